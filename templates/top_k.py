def top_k(x, k):
    """TF's top_k along the last axis: the k largest values, largest first, with their
    indices; equal values in the order of their positions, as TF keeps them (torch.topk
    orders ties its own way)."""
    values, indices = torch.sort(x, dim=-1, descending=True, stable=True)
    return values[..., :k], indices[..., :k]
