class GRUResetBefore(nn.Module):
    """Keras GRU with reset_after=False, which torch.nn.GRU cannot express: the reset gate
    scales the state before the recurrent product. Gates in nn.GRU's order (r, z, n).

    Input [batch, time, features] -> (outputs [batch, time, hidden], last state).
    """

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input = nn.Linear(input_size, 3 * hidden_size)
        self.gates = nn.Linear(hidden_size, 2 * hidden_size, bias=False)
        self.candidate = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x, h=None):
        if h is None:
            h = x.new_zeros(x.shape[0], self.candidate.in_features)
        # The input's share of every step at once; only the state's share is sequential.
        x_r, x_z, x_n = self.input(x).chunk(3, dim=2)
        outputs = []
        for t in range(x.shape[1]):
            h_r, h_z = self.gates(h).chunk(2, dim=1)
            r = torch.sigmoid(x_r[:, t] + h_r)
            z = torch.sigmoid(x_z[:, t] + h_z)
            n = torch.tanh(x_n[:, t] + self.candidate(r * h))
            h = z * h + (1 - z) * n
            outputs.append(h)
        return torch.stack(outputs, dim=1), h
