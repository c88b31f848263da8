def apply_rotary(x, angles):
    """Rotary position embedding: each feature pair (i, i + d/2) of `x` turned by its
    angle (RoFormer's rotation, in the half-split layout)."""
    return x * torch.cos(angles) + rotate_half(x) * torch.sin(angles)
