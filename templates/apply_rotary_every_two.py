def apply_rotary_every_two(x, angles):
    """Rotary position embedding in the interleaved layout: each pair of neighbouring
    features (2i, 2i + 1) of `x` turned by its angle (RoFormer's rotation)."""
    return x * torch.cos(angles) + rotate_every_two(x) * torch.sin(angles)
