def projective_transform(
    images, transforms, size, fill=0.0, mode="constant", method="bilinear"
):
    """TF's ImageProjectiveTransformV2/V3 on NHWC `images`: output pixel (x, y) of image i
    reads the input at ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1,
    from row i of `transforms` (or its only row). Points outside the image are mapped back
    in by `mode` (reflect, wrap, nearest); with `constant`, each pixel a sample reads from
    outside is `fill` (a bilinear sample near the edge blends it in), and so is a point
    sent to infinity (k = 0). Nearest rounds half away from zero."""
    n, h, w, c = images.shape
    out_h, out_w = (int(s) for s in size)
    t = transforms.float().expand(n, 8).unbind(-1)
    ys = torch.arange(out_h, dtype=torch.float32, device=images.device)[None, :, None]
    xs = torch.arange(out_w, dtype=torch.float32, device=images.device)[None, None, :]
    t = [v[:, None, None] for v in t]
    k = t[6] * xs + t[7] * ys + 1.0
    safe = torch.where(k == 0, 1.0, k)
    x = _map_coordinate((t[0] * xs + t[1] * ys + t[2]) / safe, w, mode)
    y = _map_coordinate((t[3] * xs + t[4] * ys + t[5]) / safe, h, mode)
    flat = images.reshape(n, h * w, c)

    def read(yi, xi):
        ok = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long().reshape(n, -1, 1)
        values = flat.gather(1, index.expand(-1, -1, c)).float()
        return torch.where(ok[..., None], values.reshape(n, out_h, out_w, c), fill)

    if method == "nearest":
        out = read(torch.floor(y + 0.5), torch.floor(x + 0.5))
    else:
        y0, x0 = y.floor(), x.floor()
        y1, x1 = y0 + 1.0, x0 + 1.0
        wy0, wy1 = (y1 - y)[..., None], (y - y0)[..., None]
        wx0, wx1 = (x1 - x)[..., None], (x - x0)[..., None]
        top = wx0 * read(y0, x0) + wx1 * read(y0, x1)
        bottom = wx0 * read(y1, x0) + wx1 * read(y1, x1)
        out = wy0 * top + wy1 * bottom
    return torch.where((k != 0)[..., None], out, fill).to(images.dtype)


def _map_coordinate(coord, size, mode):
    """A coordinate outside [0, size - 1] mapped back in as TF's fill modes do."""
    if mode == "constant":
        return coord
    if mode == "nearest" or size <= 1:
        return coord.clamp(0, size - 1)
    if mode == "reflect":
        period = 2 * size
        low = period * torch.trunc(-coord / period) + coord
        low = torch.where(low < -size, low + period, -low - 1)
        high = coord - period * torch.trunc(coord / period)
        high = torch.where(high >= size, period - high - 1, high)
    else:  # wrap
        low = coord + size * (torch.trunc(-coord / (size - 1)) + 1)
        high = coord - size * torch.trunc(coord / (size - 1))
    coord = torch.where(coord < 0, low, torch.where(coord > size - 1, high, coord))
    return coord.clamp(0, size - 1)
