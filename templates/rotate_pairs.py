def rotate_pairs(x, cos, sin):
    """Rotary position embeddings on neighbouring pairs of features, as Flux writes them:
    each pair (x0, x1) of the last axis turned by the angle whose cosine and sine are `cos`
    and `sin` (one per pair)."""
    x0, x1 = x.unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)
