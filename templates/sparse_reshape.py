def sparse_reshape(indices, shape, new_shape):
    """TF's SparseReshape: the positions `indices` `[n, rank]` of a sparse tensor of `shape`,
    re-expressed in `new_shape` (one entry may be -1: the size the others leave). Returns
    the new indices and the new shape (int64)."""
    shape, new_shape = [int(d) for d in shape], [int(d) for d in new_shape]
    total, known = 1, 1
    for d in shape:
        total *= d
    for d in new_shape:
        known *= d if d != -1 else 1
    new_shape = [total // known if d == -1 else d for d in new_shape]
    strides = torch.tensor([*shape[1:], 1]).flip(0).cumprod(0).flip(0)
    position = (indices * strides.to(indices.device)).sum(1)
    new_indices = torch.stack(torch.unravel_index(position, new_shape), 1)
    return new_indices, torch.tensor(new_shape)
