def _unique(x, index_dtype, counts=False):
    """TF's Unique / UniqueWithCounts: the values of a vector in order of first appearance,
    each element's position among them, and (counts=True) how often each occurs."""
    values, inverse, count = torch.unique(x, return_inverse=True, return_counts=True)
    n = x.shape[0]
    positions = torch.arange(n, device=x.device)
    first = torch.full_like(count, n).scatter_reduce(0, inverse, positions, "amin")
    order = first.argsort()
    rank = order.argsort()
    result = (values[order], rank[inverse].to(index_dtype))
    return result + (count[order].to(index_dtype),) if counts else result
