def _diagonal_layout(k, rows, cols, length, align, device):
    """Where TF's diagonals `k = (lo, hi)` of a rows x cols matrix sit in a
    [hi - lo + 1, length] array: for each matrix entry, its diagonal's row in that array,
    its position there, and whether the entry is on one of the diagonals at all. Diagonals
    are stored highest first; a short one is padded on the right or the left as `align`
    says for super- and subdiagonals ("RIGHT_LEFT": superdiagonals right-aligned)."""
    lo, hi = (k, k) if isinstance(k, int) else (k[0], k[-1])
    m = torch.arange(rows, device=device).view(-1, 1)
    n = torch.arange(cols, device=device).view(1, -1)
    d = n - m
    size = torch.minimum(rows + d.clamp(max=0), cols - d.clamp(min=0))
    super_right, sub_right = (side == "RIGHT" for side in align.split("_"))
    right = torch.where(d >= 0, super_right, sub_right)
    offset = torch.where(right, length - size, 0)
    position = torch.minimum(m, n) + offset
    on = (d >= lo) & (d <= hi)
    row = (hi - d).clamp(0, hi - lo)
    return row, position.clamp(0, max(length - 1, 0)), on


def matrix_diag(diagonal, k, rows=-1, cols=-1, padding=0, align="LEFT_LEFT"):
    """TF's MatrixDiagV2/V3: matrices with `diagonal` on diagonals `k` (an int or (lo, hi)),
    `padding` elsewhere; -1 rows or cols are derived as TF does."""
    lo, hi = (k, k) if isinstance(k, int) else (k[0], k[-1])
    if lo == hi:
        diagonal = diagonal.unsqueeze(-2)
    length = diagonal.shape[-1]
    min_rows, min_cols = length - min(hi, 0), length + max(lo, 0)
    if rows == -1 and cols == -1:
        rows = cols = max(min_rows, min_cols)
    rows = min_rows if rows == -1 else rows
    cols = min_cols if cols == -1 else cols
    row, position, on = _diagonal_layout(
        (lo, hi), rows, cols, length, align, diagonal.device
    )
    values = diagonal[..., row, position]
    return torch.where(on, values, torch.as_tensor(padding, dtype=diagonal.dtype))


def matrix_set_diag(x, diagonal, k, align="LEFT_LEFT"):
    """TF's MatrixSetDiagV2/V3: `x` with its diagonals `k` replaced by `diagonal`."""
    lo, hi = (k, k) if isinstance(k, int) else (k[0], k[-1])
    if lo == hi:
        diagonal = diagonal.unsqueeze(-2)
    row, position, on = _diagonal_layout(
        (lo, hi), x.shape[-2], x.shape[-1], diagonal.shape[-1], align, x.device
    )
    return torch.where(on, diagonal[..., row, position], x)


def matrix_diag_part(x, k, padding=0, align="LEFT_LEFT"):
    """TF's MatrixDiagPartV2/V3: diagonals `k` of each matrix, highest first, each padded
    to the longest one's length with `padding` (on the side `align` says)."""
    lo, hi = (k, k) if isinstance(k, int) else (k[0], k[-1])
    rows, cols = x.shape[-2], x.shape[-1]
    length = min(rows + min(hi, 0), cols - max(lo, 0))
    d = hi - torch.arange(hi - lo + 1, device=x.device).view(-1, 1)
    q = torch.arange(length, device=x.device).view(1, -1)
    size = torch.minimum(rows + d.clamp(max=0), cols - d.clamp(min=0))
    super_right, sub_right = (side == "RIGHT" for side in align.split("_"))
    right = torch.where(d >= 0, super_right, sub_right)
    p = q - torch.where(right, length - size, 0)
    valid = (p >= 0) & (p < size)
    m = (p - d.clamp(max=0)).clamp(0, rows - 1)
    n = (p + d.clamp(min=0)).clamp(0, cols - 1)
    out = torch.where(valid, x[..., m, n], torch.as_tensor(padding, dtype=x.dtype))
    return out.squeeze(-2) if lo == hi else out


def band_part(x, lower, upper):
    """TF's MatrixBandPart with bounds known only at run time: entries (i, j) with
    i - j <= lower and j - i <= upper kept (a negative bound keeps that whole triangle)."""
    m = torch.arange(x.shape[-2], device=x.device).view(-1, 1)
    n = torch.arange(x.shape[-1], device=x.device).view(1, -1)
    keep = ((m - n <= lower) | (lower < 0)) & ((n - m <= upper) | (upper < 0))
    return torch.where(keep, x, x.new_zeros(()))
