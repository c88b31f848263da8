def tensor_scatter_reduce(x, indices, updates, reduce):
    """TF's TensorScatterMax/Min: `x` with each slice `indices[i]` (a tuple of leading
    indices) replaced by the `reduce` ("amax", "amin") of itself and every update sent
    there, duplicates included."""
    depth = indices.shape[-1]
    strides, step = [], 1
    for size in reversed(x.shape[:depth]):
        strides.insert(0, step)
        step *= size
    rows = (indices.long() * torch.tensor(strides, device=x.device)).sum(-1).reshape(-1)
    source = updates.reshape(-1, *x.shape[depth:])
    rows = rows.reshape(-1, *[1] * (source.dim() - 1)).expand_as(source)
    out = x.flatten(0, depth - 1).scatter_reduce(0, rows, source, reduce)
    return out.reshape(x.shape)
