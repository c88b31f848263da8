def rotate_half(x):
    """Rotary position embeddings' half turn: the last axis's two halves swapped, the
    second negated ([x1, x2] -> [-x2, x1])."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)
