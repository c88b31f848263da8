def ragged_range(starts, limits, deltas, splits_dtype):
    """TF's RaggedRange: row i is range(starts[i], limits[i], deltas[i]) (scalars broadcast;
    a range going the wrong way is empty); returns the row splits and the rows' values back
    to back, each row's values summed up from its start as TF does."""
    starts, limits, deltas = torch.broadcast_tensors(
        *(torch.as_tensor(v).reshape(-1) for v in (starts, limits, deltas))
    )
    wrong_way = ((deltas > 0) & (limits < starts)) | ((deltas < 0) & (limits > starts))
    if starts.dtype.is_floating_point:
        sizes = torch.ceil(((limits - starts) / deltas).abs())
    else:
        sizes = ((limits - starts).abs() + deltas.abs() - 1) // deltas.abs()
    sizes = torch.where(wrong_way, 0, sizes).long()
    rows = []
    for start, delta, n in zip(starts, deltas, sizes.tolist()):
        steps = delta.expand(n).clone()
        steps[:1] = start
        rows.append(steps.cumsum(0, dtype=starts.dtype))
    values = torch.cat(rows) if rows else starts.new_empty(0)
    splits = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
    return splits.to(splits_dtype), values


def ragged_to_dense(shape, values, default, partitions, types):
    """TF's RaggedTensorToTensor: the ragged tensor `values` partitioned by `partitions`
    (ROW_SPLITS or VALUE_ROWIDS, after an optional FIRST_DIM_SIZE) as a dense tensor, each
    ragged axis as long as its longest row, or as `shape` says (-1: as long as needed),
    `default` where a row is short; what does not fit is dropped."""
    if types[0] == "FIRST_DIM_SIZE":
        rows, partitions, types = int(partitions[0]), partitions[1:], types[1:]
    else:
        rows = partitions[0].numel() - 1
    coords, sizes = [torch.arange(rows)], [rows]
    for p, kind in zip(partitions, types):
        p = p.long()
        if kind == "ROW_SPLITS":
            parent = torch.repeat_interleave(
                torch.arange(p.numel() - 1), p[1:] - p[:-1]
            )
            position = torch.arange(parent.numel()) - p[parent]
        else:  # VALUE_ROWIDS, sorted
            parent = p
            position = torch.arange(p.numel()) - torch.searchsorted(p, p)
        coords = [c[parent] for c in coords] + [position]
        sizes.append(int(position.max()) + 1 if position.numel() else 0)
    dims = sizes + list(values.shape[1:])
    shape = torch.as_tensor(shape)
    if shape.dim() == 1:
        dims = [d if s < 0 else s for d, s in zip(dims, shape.tolist())]
    inner = values[(slice(None), *(slice(0, d) for d in dims[len(sizes) :]))]
    out = torch.full(dims, torch.as_tensor(default).item(), dtype=values.dtype)
    fits = torch.ones(inner.shape[0], dtype=torch.bool)
    for c, d in zip(coords, dims):
        fits &= c < d
    target = [slice(0, n) for n in inner.shape[1:]]
    out[(*(c[fits] for c in coords), *target)] = inner[fits]
    return out
