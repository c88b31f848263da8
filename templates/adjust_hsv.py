def adjust_hsv(images, hue=0.0, saturation=1.0):
    """TF's AdjustHue and AdjustSaturation of RGB in the last axis: to hue, saturation and
    value as TF's kernels compute them, the hue turned by `hue` (a fraction of the circle)
    and the saturation scaled by `saturation` (clipped to [0, 1]), then back to RGB."""
    r, g, b = images.unbind(-1)
    value = torch.maximum(torch.maximum(r, g), b)
    chroma = value - torch.minimum(torch.minimum(r, g), b)
    sat = torch.where(value > 0, chroma / value, 0.0)
    # The hue in [0, 1), measured from the largest channel; 0 for greys.
    step = 1.0 / (6.0 * chroma)
    h = torch.where(
        r == value,
        step * (g - b),
        torch.where(g == value, step * (b - r) + 2.0 / 6.0, step * (r - g) + 4.0 / 6.0),
    )
    h = torch.where(chroma > 0, h, 0.0)
    h = h + hue
    h = h - h.floor()
    sat = (sat * saturation).clamp(0.0, 1.0)
    # Back to RGB: channel n is value - c * clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6.
    c = sat * value
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = (n + h * 6.0).remainder(6.0)
        channels.append(value - c * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))
    return torch.stack(channels, -1)
