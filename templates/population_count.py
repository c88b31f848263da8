def population_count(x):
    """TF's PopulationCount: the number of bits set in each integer (two's complement for
    negative ones), as uint8."""
    bits = torch.arange(x.element_size() * 8, dtype=x.dtype, device=x.device)
    return ((x.unsqueeze(-1) >> bits) & 1).sum(-1).to(torch.uint8)
