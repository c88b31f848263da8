def table_lookup(keys, values, x, default):
    """TF's static hash table lookup: the value of the key equal to each element of `x`, else
    `default`. `keys` are sorted ascending, `values` in their order."""
    at = torch.searchsorted(keys, x).clamp(max=keys.numel() - 1)
    return torch.where(keys[at] == x, values[at], default)
