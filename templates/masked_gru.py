class MaskedGRU(nn.Module):
    """Keras GRU over a masked sequence (e.g. after Embedding(mask_zero=True)): a step whose
    mask is False keeps the state and repeats the previous output (zero_output: outputs zeros).
    Called and returning like nn.GRU with batch_first=True, plus the mask [batch, time, 1].
    """

    def __init__(self, input_size, hidden_size, zero_output=False):
        super().__init__()
        self.cell = nn.GRUCell(input_size, hidden_size)
        self.zero_output = zero_output

    def forward(self, x, mask, state=None):
        h = out = x.new_zeros(x.shape[0], self.cell.hidden_size)
        if state is not None:
            h = state[0]
        outputs = []
        for t in range(x.shape[1]):
            h_t = self.cell(x[:, t], h)
            keep = mask[:, t]
            skipped = torch.zeros_like(h_t) if self.zero_output else out
            out = torch.where(keep, h_t, skipped)
            h = torch.where(keep, h_t, h)
            outputs.append(out)
        return torch.stack(outputs, dim=1), h[None]
