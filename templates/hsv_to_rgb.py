def hsv_to_rgb(images):
    """TF's HSVToRGB of hue, saturation and value in the last axis: each channel is the
    value scaled between 1 - saturation and 1 by a tent of the hue around its colour."""
    hue, sat, value = images.unbind(-1)
    sextant = hue * 6.0
    tents = (
        ((sextant - 3.0).abs() - 1.0).clamp(0.0, 1.0),
        (2.0 - (sextant - 2.0).abs()).clamp(0.0, 1.0),
        (2.0 - (sextant - 4.0).abs()).clamp(0.0, 1.0),
    )
    return torch.stack([((1.0 - sat) + sat * t) * value for t in tents], -1)
