def rgb_to_hsv(images):
    """TF's RGBToHSV of RGB in the last axis: hue in [0, 1) measured from the largest
    channel (0 for greys), saturation and value, with the kernel's arithmetic."""
    r, g, b = images.unbind(-1)
    value = torch.maximum(torch.maximum(r, g), b)
    chroma = value - torch.minimum(torch.minimum(r, g), b)
    sat = torch.where(value > 0, chroma / value, 0.0)
    step = (1.0 / chroma) * (1.0 / 6.0)
    hue = torch.where(
        r == value,
        step * (g - b),
        torch.where(g == value, step * (b - r) + 2.0 / 6.0, step * (r - g) + 4.0 / 6.0),
    )
    hue = torch.where(chroma > 0, hue, 0.0)
    hue = torch.where(hue < 0, hue + 1.0, hue)
    return torch.stack([hue, sat, value], -1)
