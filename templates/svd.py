def svd(x, compute_uv=True, full_matrices=False):
    """TF's Svd: singular values (descending), then the left and right singular vectors
    (`v`, not torch's `vh`), each vector's sign as LAPACK chooses it."""
    if not compute_uv:
        return torch.linalg.svdvals(x), None, None
    u, s, vh = torch.linalg.svd(x, full_matrices=full_matrices)
    return s, u, vh.mH
