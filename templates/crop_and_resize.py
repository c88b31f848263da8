def crop_and_resize(image, boxes, indices, size, method="bilinear", extrapolate=0.0):
    """TF's CropAndResize on an NHWC `image`: for each normalized box (y1, x1, y2, x2) of
    image `indices[i]`, a `size` (height, width) grid of samples spaced evenly from the
    box's first to its last pixel, bilinear or nearest (rounded half up); samples outside
    the image are `extrapolate`. Result [boxes, height, width, channels], float32."""
    image = image.float()
    y1, x1, y2, x2 = boxes.float().unbind(-1)

    def grid(start, end, n, count):
        if count > 1:
            step = (end - start) * (n - 1) / (count - 1)
            pos = (
                start[:, None] * (n - 1)
                + torch.arange(count, device=start.device) * step[:, None]
            )
        else:
            pos = (0.5 * (start + end) * (n - 1))[:, None].expand(-1, count)
        return pos, (pos >= 0) & (pos <= n - 1)

    ys, y_inside = grid(y1, y2, image.shape[1], size[0])
    xs, x_inside = grid(x1, x2, image.shape[2], size[1])
    b = indices.long()[:, None, None]

    def at(y, x):
        y = y.clamp(0, image.shape[1] - 1).long()[:, :, None]
        x = x.clamp(0, image.shape[2] - 1).long()[:, None, :]
        return image[b, y, x]

    if method == "nearest":
        values = at(torch.floor(ys + 0.5), torch.floor(xs + 0.5))
    else:
        top, bottom, left, right = ys.floor(), ys.ceil(), xs.floor(), xs.ceil()
        dy, dx = (ys - top)[:, :, None, None], (xs - left)[:, None, :, None]
        upper = at(top, left) + (at(top, right) - at(top, left)) * dx
        lower = at(bottom, left) + (at(bottom, right) - at(bottom, left)) * dx
        values = upper + (lower - upper) * dy
    inside = (y_inside[:, :, None] & x_inside[:, None, :])[..., None]
    return torch.where(inside, values, values.new_tensor(extrapolate))
