def stack_written(items):
    """TF's stack of a list a loop filled: the items it never wrote (the loop ended early,
    as a TF 1 `dynamic_rnn` does after the longest sequence) are zeros."""
    written = next(t for t in items if t is not None)
    return torch.stack([torch.zeros_like(written) if t is None else t for t in items])
