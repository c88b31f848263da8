def mirror_pad(x, pads, symmetric):
    """TF's MirrorPad by amounts known only at run time: `pads[i]` is (before, after) on axis
    i, mirrored about the edge (REFLECT: [2, 1, 0, 1, 2, 1] for (2, 1) on size 3) or with the
    edge repeated (SYMMETRIC: [1, 0, 0, 1, 2, 2]), for any rank."""
    edge = 0 if symmetric else 1
    for axis, (before, after) in enumerate(pads):
        if before or after:
            n = x.shape[axis]
            last = n - 1 - edge
            index = [
                *range(before - 1 + edge, edge - 1, -1),
                *range(n),
                *range(last, last - after, -1),
            ]
            x = x.index_select(axis, torch.tensor(index, device=x.device))
    return x
