def tridiagonal_solve(diagonals, rhs):
    """TF's TridiagonalSolve in its compact format: `diagonals` [..., 3, M] holds the
    superdiagonal (its last entry unused), the diagonal and the subdiagonal (its first
    entry unused); solved as the dense system, with partial pivoting as TF's default."""
    upper, main, lower = diagonals.unbind(-2)
    matrix = torch.diag_embed(main) + torch.diag_embed(upper[..., :-1], 1)
    matrix = matrix + torch.diag_embed(lower[..., 1:], -1)
    return torch.linalg.solve(matrix, rhs)
