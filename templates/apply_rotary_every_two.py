def apply_rotary_every_two(x, angles):
    """Rotary position embedding in the interleaved layout: each pair of neighbouring
    features (2i, 2i + 1) of `x` turned by its angle (RoFormer's rotation). The cos and
    sin tables are cast to `x`'s type, as in `apply_rotary`."""
    cos = torch.cos(angles).to(x.dtype)
    sin = torch.sin(angles).to(x.dtype)
    return x * cos + rotate_every_two(x) * sin
