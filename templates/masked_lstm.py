class MaskedLSTM(nn.Module):
    """Keras LSTM over a masked sequence (e.g. after Embedding(mask_zero=True)): a step whose
    mask is False keeps the state and repeats the previous output (zero_output: outputs zeros).
    Called and returning like nn.LSTM with batch_first=True, plus the mask [batch, time, 1].
    """

    def __init__(self, input_size, hidden_size, zero_output=False):
        super().__init__()
        self.cell = nn.LSTMCell(input_size, hidden_size)
        self.zero_output = zero_output

    def forward(self, x, mask, state=None):
        h = c = out = x.new_zeros(x.shape[0], self.cell.hidden_size)
        if state is not None:
            h, c = state[0][0], state[1][0]
        outputs = []
        for t in range(x.shape[1]):
            h_t, c_t = self.cell(x[:, t], (h, c))
            keep = mask[:, t]
            skipped = torch.zeros_like(h_t) if self.zero_output else out
            out = torch.where(keep, h_t, skipped)
            h, c = torch.where(keep, h_t, h), torch.where(keep, c_t, c)
            outputs.append(out)
        return torch.stack(outputs, dim=1), (h[None], c[None])
