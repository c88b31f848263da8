def _dynamic_stitch(indices, data):
    """TF's DynamicStitch: row `indices[i][j]` of the result is `data[i][j]`, the last one
    wins where an index repeats, and the result has max(index) + 1 rows."""
    indices = [torch.as_tensor(i) for i in indices]  # constant indices print as numbers
    data = [torch.as_tensor(d) for d in data]
    idx = torch.cat([i.reshape(-1) for i in indices]).long()
    rows = torch.cat(
        [
            d.flatten(0, i.dim() - 1) if i.dim() else d[None]
            for i, d in zip(indices, data)
        ]
    )
    n = int(idx.max()) + 1 if idx.numel() else 0
    order = torch.arange(idx.numel(), device=idx.device)
    last = idx.new_full((n,), -1).scatter_reduce(0, idx, order, "amax")
    out = rows.new_zeros((n,) + rows.shape[1:])
    filled = last >= 0
    out[filled] = rows[last[filled]]
    return out
