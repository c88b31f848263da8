def sparse_fill_empty_rows(indices, values, dense_shape, default):
    """TF's SparseFillEmptyRows: each row (first index) with no entry gets one, at column 0,
    holding `default`; entries keep their order within a row, rows come in order. Returns
    the new indices and values, which rows were empty, and where each entry went."""
    rows = int(dense_shape[0])
    row = indices[:, 0]
    counts = torch.bincount(row, minlength=rows)
    empty = counts == 0
    filled = counts.clamp(min=1)
    start = torch.cumsum(filled, 0) - filled
    # Each entry's rank among the entries of its row, in input order.
    order = torch.sort(row, stable=True).indices
    first_of_row = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(row), device=row.device) - first_of_row[row[order]]
    position = start[row] + rank
    total = int(filled.sum())
    new_indices = indices.new_zeros(total, indices.shape[1])
    new_indices[position] = indices
    new_values = values.new_full((total,), default)
    new_values[position] = values
    empty_rows = empty.nonzero()[:, 0]
    new_indices[start[empty_rows], 0] = empty_rows
    return new_indices, new_values, empty, position
