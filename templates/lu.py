def lu(x, index_dtype=torch.int32):
    """TF's Lu: the L and U factors packed in one matrix (L's unit diagonal left out) and
    the row permutation `p` with `x[p] = L @ U` (torch's is a matrix `P`, `x = P @ L @ U`)."""
    packed, pivots = torch.linalg.lu_factor(x)
    permutation = torch.lu_unpack(packed, pivots)[0]
    return packed, permutation.argmax(-2).to(index_dtype)
