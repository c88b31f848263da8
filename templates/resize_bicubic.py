def resize_bicubic(x, size, align_corners=False, half_pixel_centers=False):
    """TF's ResizeBicubic on channels-first `x` at sizes known only at run time: along each
    axis a matrix of cubic weights by TF's rules (Keys' a = -0.5 at half-pixel centres, taps
    past the edge dropped and the rest renormalised; else a = -0.75 with the edge pixel
    repeated), the distance rounded to TF's table of 1024 steps per pixel, in float32."""
    a = -0.5 if half_pixel_centers else -0.75

    def near(t):
        return ((a + 2) * t - (a + 3)) * t * t + 1

    def far(t):
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a

    for axis, out in zip((-2, -1), size):
        n = x.shape[axis]
        f32 = {"dtype": torch.float32, "device": x.device}
        if align_corners and out > 1:
            scale = torch.tensor(n - 1, **f32) / torch.tensor(out - 1, **f32)
        else:
            scale = torch.tensor(n, **f32) / torch.tensor(out, **f32)
        i = torch.arange(out, **f32)
        src = (i + 0.5) * scale - 0.5 if half_pixel_centers else i * scale
        base = src.floor()
        # Rounded half to even, as TF's lrintf does.
        t = torch.round((src - base) * 1024) / 1024
        weights = torch.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], 1)
        taps = base.long()[:, None] + torch.arange(-1, 3, device=x.device)
        if half_pixel_centers:
            weights = torch.where((taps >= 0) & (taps < n), weights, 0.0)
            weights = weights / weights.sum(1, keepdim=True)
        matrix = torch.zeros(out, n, **f32)
        matrix.scatter_add_(1, taps.clamp(0, n - 1), weights)
        x = matrix @ x if axis == -2 else x @ matrix.T
    return x
