def apply_rotary(x, angles):
    """Rotary position embedding: each feature pair (i, i + d/2) of `x` turned by its
    angle (RoFormer's rotation, in the half-split layout). The cos and sin tables are
    made in the angles' type and cast to `x`'s, as a bfloat16 model does."""
    cos = torch.cos(angles).to(x.dtype)
    sin = torch.sin(angles).to(x.dtype)
    return x * cos + rotate_half(x) * sin
