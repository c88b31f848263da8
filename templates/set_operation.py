def set_operation(a, b, operation):
    """TF's DenseToDenseSetOperation (`tf.sets.difference/intersection/union`): per row (all
    axes but the last) the sorted distinct values of `a` minus `b` ("a-b"), `b` minus `a`
    ("b-a"), of both ("intersection") or of either ("union"), as TF's sparse triple
    (indices, values, dense_shape), the last size that of the largest row's set."""
    lead = a.shape[:-1]
    results = []
    for row_a, row_b in zip(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])):
        row_a, row_b = torch.unique(row_a), torch.unique(row_b)
        if operation == "a-b":
            result = row_a[~torch.isin(row_a, row_b)]
        elif operation == "b-a":
            result = row_b[~torch.isin(row_b, row_a)]
        elif operation == "intersection":
            result = row_a[torch.isin(row_a, row_b)]
        else:
            result = torch.unique(torch.cat([row_a, row_b]))
        results.append(result)
    sizes = torch.tensor([len(r) for r in results], dtype=torch.long, device=a.device)
    rows = torch.repeat_interleave(torch.arange(len(results), device=a.device), sizes)
    columns = torch.cat(
        [torch.arange(len(r), device=a.device) for r in results] + [sizes[:0]]
    )
    position = torch.stack([*torch.unravel_index(rows, lead), columns], -1)
    values = torch.cat(results + [a.new_zeros(0)])
    width = int(sizes.max()) if len(results) else 0
    return position, values, torch.tensor([*lead, width], device=a.device)
