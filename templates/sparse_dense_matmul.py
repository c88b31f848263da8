def sparse_dense_matmul(indices, values, shape, b, adjoint_a=False, adjoint_b=False):
    """TF's SparseTensorDenseMatMul: the sparse matrix (`indices` `[n, 2]`, `values` `[n]`,
    `shape` `[2]`) times the dense `b`, each entry's row of `b` scaled and added into its
    output row (duplicate positions add up, as in TF); `adjoint_*` transpose first."""
    rows, cols = indices[:, 0].long(), indices[:, 1].long()
    n_rows = int(shape[0])
    if adjoint_a:
        rows, cols, n_rows = cols, rows, int(shape[1])
    if adjoint_b:
        b = b.mT
    out = torch.zeros(n_rows, b.shape[1], dtype=b.dtype, device=b.device)
    return out.index_add(0, rows, values.unsqueeze(1).to(b.dtype) * b[cols])
