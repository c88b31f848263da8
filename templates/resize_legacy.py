def resize_legacy(x, size, align_corners=False, nearest=False):
    """TF1's resize rules torch has no mode for, on channels-first `x` of sizes known only at
    run time: output pixel i samples input position i * scale (scale n / out, or
    (n - 1) / (out - 1) with align_corners, in float32 as TF computes it), bilinear between
    the two pixels around it or, for nearest, the one it rounds to (half away from zero)."""
    for axis, out in zip((-2, -1), size):
        n = x.shape[axis]
        scale = (n - 1) / (out - 1) if align_corners and out > 1 else n / out
        src = torch.arange(out, dtype=torch.float32, device=x.device) * scale
        if nearest:
            x = x.index_select(axis, (src + 0.5).floor().long().clamp(max=n - 1))
            continue
        low = src.floor().long().clamp(max=n - 1)
        high = (low + 1).clamp(max=n - 1)
        weight = (src - low).reshape((-1, 1) if axis == -2 else (-1,))
        x = torch.lerp(x.index_select(axis, low), x.index_select(axis, high), weight)
    return x
