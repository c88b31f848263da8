def non_max_suppression(
    boxes,
    scores,
    max_output,
    iou_threshold,
    score_threshold=None,
    pad=False,
    with_scores=False,
):
    """TF's NonMaxSuppression (V2-V5, hard suppression): greedily by descending score (ties:
    the lower index first), each box whose IoU with every box kept so far is at most
    `iou_threshold`, up to `max_output`, only scores above `score_threshold`. Boxes are
    (y1, x1, y2, x2) with corners in any order; a box of no area overlaps nothing. Returns
    the kept indices (int32, zero-padded to `max_output` with `pad`), their scores with
    `with_scores`, and how many were kept (int32)."""
    y1, x1, y2, x2 = boxes.unbind(-1)
    top, bottom = torch.minimum(y1, y2), torch.maximum(y1, y2)
    left, right = torch.minimum(x1, x2), torch.maximum(x1, x2)
    area = (bottom - top) * (right - left)
    keep = []
    for i in torch.sort(scores, descending=True, stable=True).indices.tolist():
        if len(keep) >= max_output:
            break
        if score_threshold is not None and not scores[i] > score_threshold:
            break
        if keep:
            k = torch.tensor(keep, device=boxes.device)
            high = torch.minimum(bottom[k], bottom[i]) - torch.maximum(top[k], top[i])
            wide = torch.minimum(right[k], right[i]) - torch.maximum(left[k], left[i])
            inter = high.clamp(min=0) * wide.clamp(min=0)
            iou = inter / (area[k] + area[i] - inter)
            iou = torch.where((area[k] > 0) & (area[i] > 0), iou, 0.0)
            if (iou > iou_threshold).any():
                continue
        keep.append(i)
    count = torch.tensor(len(keep), dtype=torch.int32)
    padding = [0] * (max_output - len(keep)) if pad else []
    indices = torch.tensor(keep + padding, dtype=torch.int64, device=boxes.device)
    if with_scores:
        kept = torch.zeros(len(indices), dtype=scores.dtype, device=scores.device)
        kept[: len(keep)] = scores[indices[: len(keep)]]
        return indices.int(), kept, count
    return indices.int(), count
