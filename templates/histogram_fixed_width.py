def histogram_fixed_width(values, value_range, nbins, dtype):
    """TF's HistogramFixedWidth: `nbins` equal bins over `value_range`, values below or above
    it counted in the first or last bin; each value's bin computed in float64 as the
    kernel computes it."""
    lo, hi = value_range[0], value_range[1]
    n = int(nbins)
    step = (hi - lo).double() / n
    bins = ((values.clamp(min=lo) - lo).double() / step).clamp(max=n - 1).long()
    return torch.bincount(bins.flatten(), minlength=n).to(dtype)
