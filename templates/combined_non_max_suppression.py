def combined_non_max_suppression(
    boxes,
    scores,
    max_per_class,
    max_total,
    iou_threshold,
    score_threshold,
    pad_per_class=False,
    clip_boxes=True,
):
    """TF's CombinedNonMaxSuppression: per image and class, `non_max_suppression` (up to
    `max_per_class` boxes scoring above `score_threshold`; boxes `[batch, n, classes or 1,
    4]`); then the boxes kept in all classes by descending score, up to `max_total` (with
    `pad_per_class`, up to min(max_total, max_per_class * classes)), clipped to [0, 1] with
    `clip_boxes`. Returns TF's zero-padded boxes, scores and classes (as floats), and the
    number of detections per image (int32)."""
    batch, _, classes = scores.shape
    size = min(max_total, max_per_class * classes) if pad_per_class else max_total
    out_boxes = boxes.new_zeros(batch, size, 4)
    out_scores = scores.new_zeros(batch, size)
    out_classes = scores.new_zeros(batch, size)
    counts = []
    for b in range(batch):
        found_boxes, found_scores, found_classes = [], [], []
        for c in range(classes):
            own = boxes[b, :, min(c, boxes.shape[2] - 1)]
            kept, count = non_max_suppression(
                own, scores[b, :, c], max_per_class, iou_threshold, score_threshold
            )
            kept = kept[:count].long()
            found_boxes.append(own[kept])
            found_scores.append(scores[b, kept, c])
            found_classes.append(torch.full((len(kept),), float(c), dtype=scores.dtype))
        found = torch.cat(found_scores)
        order = torch.sort(found, descending=True, stable=True).indices[:size]
        n = len(order)
        out_boxes[b, :n] = torch.cat(found_boxes)[order]
        out_scores[b, :n] = found[order]
        out_classes[b, :n] = torch.cat(found_classes)[order]
        counts.append(n)
    if clip_boxes:
        out_boxes = out_boxes.clamp(0.0, 1.0)
    return out_boxes, out_scores, out_classes, torch.tensor(counts, dtype=torch.int32)
