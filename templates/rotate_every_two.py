def rotate_every_two(x):
    """Interleaved rotary position embeddings' quarter turn of each pair of neighbours
    ([x0, x1, x2, x3, ...] -> [-x1, x0, -x3, x2, ...]), as RoFormer pairs features."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
