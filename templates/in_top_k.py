def in_top_k(scores, targets, k):
    """TF's InTopKV2: whether each row's target class scores among the `k` best, that is
    fewer than `k` classes score strictly higher (ties at the boundary are all in); a
    non-finite target score never is."""
    target = scores.gather(1, targets.long().unsqueeze(1))
    higher = (scores > target) | ~target.isfinite()
    return higher.sum(1) < k
