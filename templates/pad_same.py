def pad_same(x, kernel, stride, dilation=None, value=0.0):
    """TF's SAME padding of a channels-first `x` whose spatial sizes are only known at run
    time: per axis max((ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0) in total, the odd
    pixel after, so that a window op with no padding of its own gives ceil(n / s) outputs."""
    dilation = dilation or (1,) * len(kernel)
    pads = []  # torch lists the last axis first
    for n, k, s, d in zip(x.shape[2:], kernel, stride, dilation):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pads = [total // 2, total - total // 2, *pads]
    return torch.nn.functional.pad(x, pads, value=value)
