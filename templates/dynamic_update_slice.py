def dynamic_update_slice(x, update, starts):
    """XLA's DynamicUpdateSlice (Keras's `ops.slice_update`): a copy of `x` with `update`
    written at `starts`, each start clamped to [0, size - update size] so that it fits."""
    index = []
    for start, size, length in zip(starts, x.shape, update.shape):
        start = min(max(int(start), 0), size - length)
        index.append(slice(start, start + length))
    out = x.clone()
    out[tuple(index)] = update
    return out
