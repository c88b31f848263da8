def conv_transpose_sized(x, weight, bias, size, stride, dilation, same):
    """TF's transposed conv (Conv2DBackpropInput, Conv3DBackpropInputV2) when the output's
    spatial `size` is only known at run time, channels first. TF takes the full transposed
    conv and, for SAME, removes max(full - size, 0) pixels (the odd one at the end); whatever
    is still missing is added at the end (torch's output_padding)."""
    padding, extra = [], []
    for n, o, k, s, d in zip(x.shape[2:], size, weight.shape[2:], stride, dilation):
        full = (n - 1) * s + (k - 1) * d + 1
        p = max(full - o, 0) // 2 if same else 0
        padding.append(p)
        extra.append(max(o - (full - 2 * p), 0))
    f = torch.nn.functional
    conv = (f.conv_transpose1d, f.conv_transpose2d, f.conv_transpose3d)[x.dim() - 3]
    y = conv(x, weight, bias, stride, padding, extra, 1, dilation)
    return y[(..., *(slice(0, o) for o in size))]
