def quantize_int8(x, dim, eps=1e-7):
    """Keras' int8 quantization of a layer's input (`abs_max_quantize`): `x` scaled so that
    its largest magnitude along `dim` is 127, rounded and clipped to [-127, 127], as int8
    codes; and that scale, 127 / (max |x| + eps), which the layer divides its integer
    product by."""
    scale = 127.0 / (x.abs().amax(dim, keepdim=True) + eps)
    return torch.round(x * scale).clamp(-127.0, 127.0).to(torch.int8), scale
