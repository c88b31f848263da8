def ctc_greedy_decoder(inputs, lengths, merge_repeated=True, blank=-1):
    """TF's CTCGreedyDecoder on time-major `inputs` `[time, batch, classes]`: per sequence,
    the best class at each of its `lengths[b]` steps (the first on ties), repeats merged
    with `merge_repeated`, blanks (class `blank`, counted from the end when negative)
    dropped. Returns TF's sparse triple of the decoded labels (int64 indices, values and
    dense shape [batch, longest]) and the negative sum of the best scores, `[batch, 1]`."""
    blank = blank % inputs.shape[2]
    best, labels = inputs.max(2)
    log_probability = []
    decoded = []
    for b in range(inputs.shape[1]):
        steps = int(lengths[b])
        path = labels[:steps, b]
        log_probability.append(-best[:steps, b].sum())
        if merge_repeated and steps > 1:
            path = path[
                torch.cat([path.new_ones(1, dtype=torch.bool), path[1:] != path[:-1]])
            ]
        decoded.append(path[path != blank])
    sizes = torch.tensor(
        [len(d) for d in decoded], dtype=torch.long, device=inputs.device
    )
    rows = torch.repeat_interleave(
        torch.arange(len(decoded), device=inputs.device), sizes
    )
    columns = torch.cat([torch.arange(len(d), device=inputs.device) for d in decoded])
    values = torch.cat(decoded).long()
    shape = torch.tensor([len(decoded), int(sizes.max()) if len(decoded) else 0])
    log_probability = torch.stack(log_probability).reshape(-1, 1)
    return torch.stack([rows, columns], 1), values, shape, log_probability
