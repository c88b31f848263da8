def _quantize_dequantize(x, lo, hi, min_q, max_q, half_up):
    """TF's QuantizeAndDequantize with a range per tensor or per channel (`lo`, `hi`
    broadcast against `x`): the side whose scale is smaller fixes the scale, the other bound
    moves onto the grid, values are clamped, rounded and scaled back."""
    big = torch.finfo(x.dtype).max
    from_min = torch.where(min_q * lo > 0, min_q / lo, big)
    from_max = torch.where(max_q * hi > 0, max_q / hi, big)
    use_min = from_min < from_max
    scale = torch.where(use_min, from_min, from_max)
    inverse = torch.where(use_min, lo / min_q, hi / max_q)
    lo = torch.where(use_min, lo, min_q * inverse)
    hi = torch.where(use_min, max_q * inverse, hi)
    scaled = torch.minimum(torch.maximum(x, lo), hi) * scale
    rounded = torch.floor(scaled + 0.5) if half_up else torch.round(scaled)
    return rounded * inverse
