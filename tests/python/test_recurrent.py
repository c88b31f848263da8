"""Issue 6: Keras recurrent layers and TF loops, frozen (TF lowers loops to
Enter/Merge/Switch/NextIteration/Exit frames) and as SavedModels (While ops with cond and body
functions). Fixtures: tests/fixtures/make_fixtures.py recurrent build/fixtures."""

import re
import subprocess

import numpy as np
import pytest
import torch

from conftest import (
    GENERATED_DIR,
    TOLERANCE,
    assert_parity,
    binary,
    import_model,
    rel_error,
    ruff,
    run_cli,
    run_generated,
)

# model -> the PyTorch recurrent layers its model.py must contain (the loops all fused).
FUSED = {
    "rnn_lstm_gru": {"LSTM": 1, "GRU": 1},
    "rnn_bidirectional": {"LSTM": 1, "GRU": 1},
    "rnn_stacked_state": {"LSTM": 2},
    "rnn_variable_length": {"LSTM": 1, "GRU": 1},
    "rnn_conv_lstm": {"LSTM": 1},
    "rnn_simple_time_distributed": {"RNN": 1},
    # Keras 2 (tf_keras): other loop bodies (Split, biases unstacked outside the loop).
    "rnn_keras2": {"LSTM": 1, "GRU": 1},
    # `unroll=True`: no loop, one copy of the cell per step.
    "rnn_unrolled": {"LSTM": 1, "GRU": 1, "RNN": 1},
}


def fixture(name):
    path = GENERATED_DIR / name
    if not path.exists():
        pytest.fail(f"{path} missing: run tests/fixtures/make_fixtures.py recurrent build/fixtures")
    return path


def convert(src, tmp_path, *flags):
    out = tmp_path / "out"
    run_cli("convert", src, "-o", out, *flags)
    assert ruff("check", "--no-cache", str(out / "model.py")).returncode == 0
    assert ruff("format", "--no-cache", "--check", str(out / "model.py")).returncode == 0
    return out


def report(line):
    print(line)
    with open(GENERATED_DIR / "report.txt", "a") as f:
        f.write(line + "\n")


@pytest.mark.parametrize("form", ["pb", "saved"])
@pytest.mark.parametrize("name", sorted(FUSED))
def test_keras_rnn_becomes_torch_rnn(name, form, tmp_path):
    src = fixture(f"{name}.pb" if form == "pb" else f"{name}_saved")
    out = convert(src, tmp_path, "--strict")
    npz = GENERATED_DIR / (f"{name}.npz" if form == "pb" else f"{name}_saved.npz")
    errors = assert_parity(out, npz)
    model = import_model(out).load_model()
    kinds = {k: sum(type(m) is getattr(torch.nn, k) for m in model.modules()) for k in ("LSTM", "GRU", "RNN")}
    assert {k: v for k, v in kinds.items() if v} == FUSED[name]
    src_text = (out / "model.py").read_text()
    forward = src_text[src_text.index("def forward") : src_text.index("def _read_safetensors")]
    assert "for " not in forward and "while " not in forward
    report(f"{name} ({form}): rel. error {max(errors):.2e}, {kinds}")


def test_variable_sequence_length(tmp_path):
    """Time steps and batch unknown: one conversion runs at every length TF was run at."""
    out = convert(fixture("rnn_variable_length.pb"), tmp_path, "--strict")
    for npz in ("rnn_variable_length.npz", "rnn_variable_length_t4.npz"):
        got, wants = run_generated(out, GENERATED_DIR / npz)
        assert got[0].shape == wants[0].shape
        assert rel_error(got[0], wants[0]) <= 1e-4, npz


def test_gate_order_is_read_from_the_graph(tmp_path):
    """The fused weights follow the graph, not a fixed Keras layout: PyTorch's weight_ih of
    the LSTM is Keras' kernel with its gate blocks in i, f, g, o order (transposed)."""
    out = convert(fixture("rnn_lstm_gru.pb"), tmp_path)
    model = import_model(out).load_model()
    lstm = next(m for m in model.modules() if isinstance(m, torch.nn.LSTM))
    assert lstm.weight_ih_l0.shape == (64, 8) and lstm.weight_hh_l0.shape == (64, 16)
    # Keras has one bias; PyTorch's second is zero.
    assert torch.count_nonzero(lstm.bias_hh_l0) == 0 and torch.count_nonzero(lstm.bias_ih_l0) > 0


def test_bidirectional_is_one_layer(tmp_path):
    """Keras Bidirectional(LSTM(return_sequences=True)) and Bidirectional(GRU()) each become
    one PyTorch layer with bidirectional=True, called once."""
    out = convert(fixture("rnn_bidirectional.pb"), tmp_path, "--strict")
    model = import_model(out).load_model()
    rnns = [m for m in model.modules() if isinstance(m, (torch.nn.LSTM, torch.nn.GRU))]
    assert len(rnns) == 2 and all(m.bidirectional and m.batch_first for m in rnns)
    assert ".flip(" not in (out / "model.py").read_text()


def test_state_outputs_read_naturally(tmp_path):
    """return_state and initial_state: `y, (h, c) = self.encoder(x)` and the decoder starts
    from the encoder's state."""
    out = convert(fixture("rnn_stacked_state.pb"), tmp_path, "--strict")
    src = (out / "model.py").read_text()
    assert re.search(r"encoder, \(encoder_h, encoder_c\) = self\.encoder\(", src), src
    assert "self.decoder(" in src


# Loops no recurrent layer matches: a method with a Python `while` loop over the translated body.
LOOPS = ["tf_while_refine", "tf_while_growing", "tf_nested_while", "tf_while_decode"]


@pytest.mark.parametrize("form", ["pb", "saved"])
@pytest.mark.parametrize("name", LOOPS)
def test_other_loops_become_python_loops(name, form, tmp_path):
    """A loop whose variable grows and reads its own width (which must not be folded to the
    first iteration's), a
    hand-written tf.while_loop with a data-dependent exit, a loop inside a loop, and greedy
    decoding (an embedding variable gathered inside the loop, tokens in a TensorArray):
    explicit loops, translated op by op, same results as TensorFlow. A SavedModel's loop is
    named as its code named it, not after the calls that ran its function."""
    src = fixture(f"{name}.pb" if form == "pb" else f"{name}_saved")
    out = convert(src, tmp_path, "--strict")
    npz = GENERATED_DIR / (f"{name}.npz" if form == "pb" else f"{name}_saved.npz")
    errors = assert_parity(out, npz)
    text = (out / "model.py").read_text()
    # A method, or a function where the loop reads none of the model's layers.
    assert re.search(r"\n    def \w+_loop\(self, |\ndef \w+_loop\(", text), text
    # A loop counting to a bound is a `for` over `range` (tf_while_growing's four steps).
    assert ("for step in range(4):" in text) == (name == "tf_while_growing"), text
    assert bool(re.search(r"\n +while ", text)) == (name != "tf_while_growing"), text
    assert "PartitionedCall" not in text, text
    model = import_model(out).load_model()
    assert not any(isinstance(m, (torch.nn.GRU, torch.nn.LSTM)) for m in model.modules())
    report(f"{name} ({form}): rel. error {max(errors):.2e}, explicit loop")


@pytest.mark.parametrize("form", ["pb", "saved"])
def test_counted_loops_are_for_loops(form, tmp_path):
    """A hand-written RNN (`x[:, i]` read, step i of a TensorArray written), `tf.scan` without
    an initializer (its index starts at 1, beside TF's own iteration count) and `tf.map_fn`:
    each loop counts to a bound, so each is `for step in range(...)`, the counter a Python
    int indexing directly (`x[:, step]`, not a stacked vector read back with `.tolist()`),
    neither passed in nor returned. Same results as TensorFlow."""
    src = fixture("tf_counted_loops.pb" if form == "pb" else "tf_counted_loops_saved")
    out = convert(src, tmp_path, "--strict")
    npz = GENERATED_DIR / ("tf_counted_loops.npz" if form == "pb" else "tf_counted_loops_saved.npz")
    errors = assert_parity(out, npz)
    text = (out / "model.py").read_text()
    # Methods, or functions where a loop reads none of the model's layers (scan, map).
    assert len(re.findall(r"\n    def \w+_loop\(self, |\ndef \w+_loop\(", text)) == 3, text
    assert len(re.findall(r"\n +for step in range\(", text)) == 3, text
    assert re.search(r"\n +for step in range\(1, num_steps\):", text), text
    assert "while " not in text and "torch.tensor(0, dtype=torch.int32)" not in text, text
    assert re.search(r" = \w+\[:, step\]\n", text), text
    assert ".tolist()" not in text and "[step, " not in text, text
    # A list set at every step from the first is built in the loop by `append` and stacked
    # as it is (the RNN's and the map's); the scan's, from step 1, is the loop's own
    # variable, assigned where it is written (`h = [*h[:step], state, *h[step + 1 :]]`),
    # not a temporary moved into it at the end.
    assert len(re.findall(r"\n +outputs = \[\]\n", text)) == 2, text
    assert len(re.findall(r"\n +outputs\.append\(\w+\)\n", text)) == 2, text
    assert len(re.findall(r"\n +(\w+) = \[\*\1\[:step\], \w+, \*\1\[step \+ 1 :\]\]\n", text)) == 1, text
    # Only the scan's list is reserved outside its loop and stacked by the helper for lists
    # with items never set (its definition, one call).
    assert text.count("[None] *") == 1 and text.count("stack_written(") == 2, text
    assert "tensor_array_v2_write" not in text, text
    # The item a scan or map reads at the step is `x_t`, not TF's `tensor_array_v2_read`.
    assert len(re.findall(r"\n +x_t = ", text)) == 2 and "tensor_array_v2_read" not in text, text
    report(f"tf_counted_loops ({form}): rel. error {max(errors):.2e}, three for loops")


@pytest.mark.parametrize("form", ["pb", "saved"])
def test_cell_options(form, tmp_path):
    """use_bias=False, go_backwards and relu fuse; hard_sigmoid gates (which PyTorch's layers
    lack) leave that one LSTM an explicit loop, in the same model."""
    src = fixture("rnn_variants.pb" if form == "pb" else "rnn_variants_saved")
    out = convert(src, tmp_path, "--strict")
    errors = assert_parity(out, GENERATED_DIR / ("rnn_variants.npz" if form == "pb" else "rnn_variants_saved.npz"))
    model = import_model(out).load_model()
    kinds = {k: sum(type(m) is getattr(torch.nn, k) for m in model.modules()) for k in ("LSTM", "GRU", "RNN")}
    assert kinds == {"LSTM": 1, "GRU": 1, "RNN": 1}
    text = (out / "model.py").read_text()
    assert len(re.findall(r"    def \w+_loop\(", text)) == 1
    # That loop keeps only its last output: it writes item 0 of its list at every step, as
    # `[h, *outputs[1:]]`, not `[*outputs[:0], h, *outputs[0 + 1 :]]`.
    assert re.search(r" = \[\w+, \*\w+\[1:\]\]\n", text), text
    assert "[:0]" not in text and "0 + 1" not in text, text
    report(f"rnn_variants ({form}): rel. error {max(errors):.2e}, {kinds} + 1 explicit loop")


@pytest.mark.parametrize("form", ["pb", "saved"])
def test_gru_reset_before_is_an_explicit_cell(form, tmp_path):
    """GRU(reset_after=False) has no nn.GRU equivalent: it becomes a small GRUResetBefore
    module (a readable per-step loop) defined in model.py, with weights in nn.GRU's gate order."""
    src = fixture("rnn_gru_reset_before.pb" if form == "pb" else "rnn_gru_reset_before_saved")
    out = convert(src, tmp_path, "--strict")
    npz = "rnn_gru_reset_before.npz" if form == "pb" else "rnn_gru_reset_before_saved.npz"
    errors = assert_parity(out, GENERATED_DIR / npz)
    text = (out / "model.py").read_text()
    assert "class GRUResetBefore(nn.Module):" in text and "self.gru = GRUResetBefore(5, 6)" in text
    assert "for t in range(x.shape[1]):" in text and "_loop(" not in text
    report(f"rnn_gru_reset_before ({form}): rel. error {max(errors):.2e}, GRUResetBefore cell")


@pytest.mark.parametrize("form", ["pb", "saved"])
def test_masked_lstm_and_gru(form, tmp_path):
    """Embedding(mask_zero=True) before LSTMs and a GRU (masked steps keep the state, which
    nn.LSTM and nn.GRU cannot): each becomes a MaskedLSTM or MaskedGRU module (nn.LSTMCell or
    nn.GRUCell stepping over the sequence, keeping state where the mask is False), with and
    without return_sequences; no loop is left written out op by op."""
    src = fixture("rnn_masked.pb" if form == "pb" else "rnn_masked_saved")
    out = convert(src, tmp_path, "--strict")
    errors = assert_parity(out, GENERATED_DIR / ("rnn_masked.npz" if form == "pb" else "rnn_masked_saved.npz"))
    text = (out / "model.py").read_text()
    assert "self.lstm_seq = MaskedLSTM(8, 6)" in text and "self.lstm_last = MaskedLSTM(6, 5)" in text
    assert "self.gru = MaskedGRU(6, 4)" in text and "class MaskedGRU(nn.Module):" in text, text
    assert "_loop(" not in text and "while " not in text, text
    report(f"rnn_masked ({form}): rel. error {max(errors):.2e}, 2 MaskedLSTM + 1 MaskedGRU")


@pytest.mark.parametrize("form", ["pb", "saved"])
def test_masked_bidirectional_and_backwards_layers(form, tmp_path):
    """A masked Bidirectional LSTM (its layers write zeros at masked steps, and the backward
    one reads the sequence and the mask reversed) and a masked GRU going backwards: MaskedLSTM
    and MaskedGRU modules on the flipped sequence and mask, no loop written out op by op."""
    src = fixture("rnn_masked_bidirectional.pb" if form == "pb" else "rnn_masked_bidirectional_saved")
    out = convert(src, tmp_path, "--strict")
    npz = "rnn_masked_bidirectional.npz" if form == "pb" else "rnn_masked_bidirectional_saved.npz"
    errors = assert_parity(out, GENERATED_DIR / npz)
    text = (out / "model.py").read_text()
    assert text.count("= MaskedLSTM(8, 6, zero_output=True)") == 2, text
    assert "= MaskedGRU(6, 4)" in text and ".flip((1,))" in text, text
    assert "_loop(" not in text and "while " not in text, text
    report(f"rnn_masked_bidirectional ({form}): rel. error {max(errors):.2e}, 2 MaskedLSTM + 1 MaskedGRU")


def test_tf1_dynamic_rnn(tmp_path):
    """A frozen TF1 graph: dynamic_rnn over LSTMCell and BasicLSTMCell (concat([x, h]) times
    one kernel; forget_bias added in the loop, folded into PyTorch's bias) becomes nn.LSTM;
    GRUCell (reset before the candidate product) becomes the GRUResetBefore cell."""
    out = convert(fixture("tf1_dynamic_rnn.pb"), tmp_path, "--strict")
    errors = assert_parity(out, GENERATED_DIR / "tf1_dynamic_rnn.npz")
    model = import_model(out).load_model()
    assert sum(type(m) is torch.nn.LSTM for m in model.modules()) == 2
    text = (out / "model.py").read_text()
    assert "self.gru = GRUResetBefore(6, 5)" in text and "_loop(" not in text
    report(f"tf1_dynamic_rnn (pb): rel. error {max(errors):.2e}, 2 nn.LSTM + GRUResetBefore")


def test_tf1_static_rnn(tmp_path):
    """A frozen TF1 graph: `static_rnn` over `tf.unstack(x, axis=1)` has no loop, a copy of
    the cell per step. The LSTMCell's steps are one nn.LSTM; the GRUCell's, reading the LSTM's
    outputs one by one, read that layer's output along time, and are one GRUResetBefore: no
    step left computed, no step's slice of the input read. The LSTM's last state, read as the
    last of its outputs, is that slice (`lstm[:, 5]`), not an unbind."""
    out = convert(fixture("tf1_static_rnn.pb"), tmp_path, "--strict")
    errors = assert_parity(out, GENERATED_DIR / "tf1_static_rnn.npz")
    model = import_model(out).load_model()
    assert sum(type(m) is torch.nn.LSTM for m in model.modules()) == 1
    text = (out / "model.py").read_text()
    assert "self.gru = GRUResetBefore(7, 4)" in text, text
    # The model's own forward (GRUResetBefore's comes first).
    forward = text[text.rindex("    def forward") : text.index("def _read_safetensors")]
    assert "torch.sigmoid" not in forward and "unbind(" not in forward, forward
    assert "x = lstm[:, 5]" in forward, forward
    report(f"tf1_static_rnn (pb): rel. error {max(errors):.2e}, nn.LSTM + GRUResetBefore")


def test_loop_whose_output_list_is_read_stays_a_loop(tmp_path):
    """A graph output naming a loop's output list itself (not its stack) keeps the loop: the
    recurrent layer cannot take its place. (Found by fuzzing: fusing it anyway left the loop
    alive, and the pass pipeline fused it again forever.)"""
    out = tmp_path / "out"
    # basic/while:3 is the list of h per step, basic/while:4 the final c (TF's output_2).
    outputs = "basic/while:3,basic/while:4"
    args = [
        binary(),
        "convert",
        fixture("tf1_dynamic_rnn.pb"),
        "-o",
        out,
        "--outputs",
        outputs,
    ]
    subprocess.run(list(map(str, args)), check=True, timeout=60, capture_output=True)
    assert len(re.findall(r"    def \w+_loop\(", (out / "model.py").read_text())) == 1
    ref = np.load(GENERATED_DIR / "tf1_dynamic_rnn.npz")
    with torch.no_grad():
        steps, c = import_model(out).load_model()(torch.from_numpy(ref["input_0"]))
    assert len(steps) == 7 and steps[-1].shape == (3, 4)
    error = rel_error(c.numpy(), ref["output_2"])
    assert error <= TOLERANCE, error
    report(
        f"tf1 basic LSTM loop, its output list read: rel. error {error:.2e}, explicit loop"
    )


def test_tf1_tensor_array_loops(tmp_path):
    """`tf1_dynamic_rnn` as TF 1.x wrote it (control flow v1: TensorArrayV3 ops threaded by a
    flow value, in Enter/Exit frames): the arrays become lists, the loops Python loops, and the
    model matches TensorFlow."""
    out = convert(fixture("tf1_dynamic_rnn_v1.pb"), tmp_path, "--strict")
    errors = assert_parity(out, GENERATED_DIR / "tf1_dynamic_rnn_v1.npz")
    code = (out / "model.py").read_text()
    assert "TensorArray" not in code
    # dynamic_rnn's time step and while_loop's own count, twins, are one counter; where
    # both are tested against the same length the loop reads `for step in range(7):`.
    assert code.count("for step in range(7):") == 2 and "step_2" not in code, code
    # The LSTM's stacked outputs are time major: their first size is the steps, not a batch.
    assert "num_steps = " in code and "batch_size" not in code, code
    # TF 1's arrays are named as the TF 2 ones are: the item read at the step is `x_t`.
    assert code.count("x_t = xs[step]") == 2 and "tensor_array" not in code, code
    report(f"tf1_dynamic_rnn_v1 (pb, TensorArrayV3): rel. error {max(errors):.2e}")


def test_tf1_sequence_lengths(tmp_path):
    """dynamic_rnn with per-row sequence_length (steps past a row's end keep its state):
    an explicit loop over the translated cell, same results as TensorFlow for every row.
    The longest row (5) is shorter than the padded input (7): the loop stops after it and
    TF's outputs for the last steps are zeros (`stack_written`)."""
    out = convert(fixture("tf1_dynamic_rnn_lengths.pb"), tmp_path, "--strict")
    errors = assert_parity(out, GENERATED_DIR / "tf1_dynamic_rnn_lengths.npz")
    code = (out / "model.py").read_text()
    assert len(re.findall(r"    def \w+_loop\(", code)) == 1
    assert "stack_written(" in code, code
    # The lists the loop reads and fills are `xs` and `outputs`, the item at the step `x_t`,
    # not TF's `tensor_array_unstack`, `tensor_array_v2` and `tensor_array_v2_read`.
    assert "x_t = xs[step]" in code and "outputs = [*outputs[:step], " in code, code
    assert "tensor_array" not in code, code
    report(f"tf1_dynamic_rnn_lengths (pb): rel. error {max(errors):.2e}, explicit loop")


def test_loop_keeps_only_what_changes(tmp_path):
    """TF's bookkeeping (loop counter, maximum iterations, weights passed through) is not
    loop state: the refinement loop carries its step, its value and its last update only."""
    out = convert(fixture("tf_while_refine_saved"), tmp_path, "--strict")
    text = (out / "model.py").read_text()
    sig = re.search(r"def (\w+_loop)\(self, ([^)]*)\)", text)
    assert sig and len(sig.group(2).split(", ")) == 3, sig and sig.group(0)


@pytest.mark.parametrize("name", ["rnn_bidirectional.pb", "tf_nested_while_saved"])
def test_loops_convert_deterministically(name, tmp_path):
    """Loop extraction and fusion order nothing by hash or address: byte-identical output."""
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        run_cli("convert", fixture(name), "-o", out)
        outs.append([(out / f).read_bytes() for f in ("model.py", "model.safetensors")])
    assert outs[0] == outs[1]


@pytest.mark.parametrize("form", ["pb", "saved"])
def test_loops_unrolled_when_traced_are_loops(form, tmp_path):
    """Python `for` loops in a `tf.function` leave one copy of their body per step (six): a
    recurrence over `x[:, t]` no recurrent layer computes, its states stacked and its last one
    returned, and a running maximum over `tf.unstack` of those states. Each is one
    `for step in range(6):` reading `x[:, step]`, carrying the state and giving the stack;
    no step is left written out. Same results as TensorFlow."""
    src = fixture("tf_unrolled_loops.pb" if form == "pb" else "tf_unrolled_loops_saved")
    out = convert(src, tmp_path, "--strict")
    npz = GENERATED_DIR / ("tf_unrolled_loops.npz" if form == "pb" else "tf_unrolled_loops_saved.npz")
    errors = assert_parity(out, npz)
    text = (out / "model.py").read_text()
    assert len(re.findall(r"\n +for step in range\(6\):", text)) == 2, text
    assert text.count("torch.tanh(") == 1 and text.count("torch.maximum(") == 1, text
    assert re.search(r" = \w+\[:, step\]\n", text), text
    assert re.search(r"\[:, [0-9]\]", text) is None and "torch.unbind" not in text, text
    assert re.search(r"= torch\.stack\(\w+, dim=1\)\n", text), text
    report(f"tf_unrolled_loops ({form}): rel. error {max(errors):.2e}, two for loops")
