def _max_pool_with_argmax(x, kernel, stride, pads, include_batch_in_index):
    """TF's MaxPoolWithArgmax on NHWC input (`pads`: TF's SAME or VALID padding per side):
    each window's max, and where it is as TF's flat index ((b * H + y) * W + x) * C + c,
    b counted only with include_batch_in_index. The first maximum in a window wins, as in TF."""
    n, h, w, c = x.shape
    (top, bottom), (left, right) = pads
    padded = torch.nn.functional.pad(
        x.permute(0, 3, 1, 2), (left, right, top, bottom), value=float("-inf")
    )
    values, index = torch.nn.functional.max_pool2d(
        padded, kernel, stride, return_indices=True
    )
    wide = w + left + right
    row, col = index // wide - top, index % wide - left
    flat = (row * w + col) * c + torch.arange(c, device=x.device).view(1, c, 1, 1)
    if include_batch_in_index:
        flat = flat + torch.arange(n, device=x.device).view(n, 1, 1, 1) * (h * w * c)
    return values.permute(0, 2, 3, 1), flat.permute(0, 2, 3, 1)
