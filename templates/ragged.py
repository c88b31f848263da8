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


def ragged_gather(splits, values, indices):
    """TF's RaggedGather with a vector of indices: the rows `indices` picks, with all their
    nested rows, as new row splits (one per ragged axis, in the splits' dtype) and values."""
    rows = indices.long()
    new_splits = []
    for row_splits in splits:
        starts = row_splits.long()[rows]
        lengths = row_splits.long()[rows + 1] - starts
        offsets = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])
        new_splits.append(offsets.to(row_splits.dtype))
        # The rows of the next axis these rows hold, in order.
        within = torch.arange(int(offsets[-1]), device=rows.device)
        within = within - torch.repeat_interleave(offsets[:-1], lengths)
        rows = torch.repeat_interleave(starts, lengths) + within
    return (*new_splits, values[rows])


def ragged_to_sparse(splits, values):
    """TF's RaggedTensorToSparse: the position of every value of a ragged tensor (row splits
    per ragged axis, then the values' own axes) in row-major order, the values flattened,
    and the dense shape (each ragged axis as long as its longest row), all int64."""
    position = torch.arange(values.shape[0], device=values.device)
    columns = []
    for row_splits in reversed(splits):
        row_splits = row_splits.long()
        row = torch.searchsorted(row_splits, position, right=True) - 1
        columns.insert(0, position - row_splits[row])
        position = row
    index = torch.stack([position, *columns], 1)
    inner = list(values.shape[1:])
    if inner:
        cells = torch.cartesian_prod(*(torch.arange(d) for d in inner)).reshape(
            -1, len(inner)
        )
        index = torch.cat(
            [index.repeat_interleave(len(cells), 0), cells.repeat(len(index), 1)], 1
        )
    lengths = [s[1:] - s[:-1] for s in splits]
    widths = [int(n.max()) if len(n) else 0 for n in lengths]
    shape = torch.tensor([len(splits[0]) - 1, *widths, *inner])
    return index, values.reshape(-1), shape
