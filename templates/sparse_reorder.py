def sparse_reorder(indices, values, shape):
    """TF's SparseReorder: a sparse tensor's entries sorted in row-major order of their
    positions (stably: entries at the same position keep their order)."""
    strides = torch.tensor([*shape[1:], 1]).flip(0).cumprod(0).flip(0)
    position = (indices * strides.to(indices.device)).sum(1)
    order = torch.sort(position, stable=True).indices
    return indices[order], values[order]
