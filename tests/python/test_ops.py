"""Per-op-family graphs built by TensorFlow: convert through the CLI, compare with TF."""

import inspect
import re

import pytest

from conftest import OPS_DIR, assert_parity, import_model, ruff, run_cli

STUB_FIXTURES = ("unknown_op", "loop_unknown_op", "frozen_table")
OP_FIXTURES = sorted(p.stem for p in OPS_DIR.glob("*.pb") if p.stem not in STUB_FIXTURES)
# Samples from torch's generator: compared by shape, dtype and range, not values.
RANDOM_FIXTURES = ("ops_random",)


@pytest.mark.parametrize("name", [n for n in OP_FIXTURES if n not in RANDOM_FIXTURES])
def test_parity(name, tmp_path):
    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / f"{name}.pb", "-o", out)
    errors = assert_parity(out, OPS_DIR / f"{name}.npz")
    print(f"{name}: max rel. error {max(errors):.3g}")
    assert not (out / "custom_ops.py").exists(), "every op here has a translation"


@pytest.mark.parametrize("name", OP_FIXTURES)
def test_generated_code_is_ruff_clean(name, tmp_path):
    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / f"{name}.pb", "-o", out)
    check = ruff("check", "--no-cache", str(out / "model.py"))
    assert check.returncode == 0, check.stdout
    fmt = ruff("format", "--no-cache", "--diff", str(out / "model.py"))
    assert fmt.returncode == 0, fmt.stdout


def test_hard_activations_read_as_torch_calls(tmp_path):
    """MobileNetV3's and Keras' hard sigmoid and hard swish are `F.hardsigmoid` and
    `F.hardswish`; look-alikes with other constants stay as written (parity above). The
    fixture computes each of the two on `y` twice: one computation, written once, returned
    twice."""
    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / "ops_hard_activation.pb", "-o", out)
    code = (out / "model.py").read_text()
    assert code.count("F.hardsigmoid(") == 2 and code.count("F.hardswish(") == 1, code
    assert "return mul_nhwc, mul_2_nhwc, mul_nhwc, mul_2_nhwc," in code, code
    assert code.count("F.relu6(") == 2 and "/ 5.0" in code and "+ 2.0" in code, code


def test_activations_spelled_out_are_torch_calls(tmp_path):
    """Mish (`x * tanh(softplus(x))`) is `F.mish`, `-softplus(-x)` is `F.logsigmoid`, a clip
    (a minimum then a maximum, either way round) is one `clamp(lo, hi)`; bounds that cross
    stay two clamps, as TF computes them (parity above)."""
    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / "ops_activation.pb", "-o", out)
    code = (out / "model.py").read_text()
    assert "F.mish(" in code and "F.logsigmoid(" in code, code
    assert ".clamp(-0.5, 0.75)" in code and ".clamp(-1.0, 1.0)" in code, code
    assert ".clamp(min=0.5)" in code and "clamp(max=-0.5)" in code, code


def test_slim_scopes_name_the_layers(tmp_path):
    """TF-Slim capitalises its scopes as TF capitalises its own (`Tensordot`): the layers
    are named after them (`conv2d_1a_3x3_batch_norm`, not `inception_v3_2`), the model's
    scope opened twice (`InceptionV3/InceptionV3/`) is said once, and the three identical
    Mixed blocks are one class in a loop, as are three MobileNet units (parity above)."""
    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / "tf1_slim.pb", "-o", out)
    code = (out / "model.py").read_text()
    assert "self.conv2d_1a_3x3 = nn.Conv2d(3, 16, 3, stride=2" in code, code
    assert "self.conv2d_1a_3x3_batch_norm = nn.BatchNorm2d(16" in code, code
    assert "self.branch_1_conv2d_0b_5x5 = nn.Conv2d(6, 8, 5" in code, code
    assert "class Mixed(nn.Module)" in code and "self.mixed_5 = nn.ModuleList([Mixed() for _ in range(3)])" in code, code
    assert "self.logits_conv2d_1c_1x1 = nn.Conv2d(24, 10, 1)" in code, code
    assert "inception_v3" not in code, code
    # MobileNet's units are a class not named as torch's own layer, its layers as slim's.
    assert "nn.ModuleList([Conv2dBlock() for _ in range(3)])" in code, code
    assert "self.depthwise_batch_norm = nn.BatchNorm2d(24" in code, code


def test_logsumexp_is_one_call(tmp_path):
    """`tf.reduce_logsumexp` (a max made 0 where not finite, exp, sum, log, the max added
    back: eight statements) is `x.logsumexp(dims)`, on the channels-first axes of a conv's
    output too; rows of -inf stay -inf (parity above)."""
    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / "ops_reduce.pb", "-o", out)
    code = (out / "model.py").read_text()
    assert code.count(".logsumexp(") == 3, code
    assert ".logsumexp(1, keepdim=True)" in code and ".logsumexp((2, 3))" in code, code
    assert "isfinite" not in code, code


def test_l2_normalize_is_f_normalize(tmp_path):
    """`tf.math.l2_normalize` (its epsilon on the squared norm) and Keras 3's normalize (a
    ceiling on the inverse norm) are `F.normalize` with the epsilon on the norm, along the
    channels-first axis of a conv's output too (parity above, tiny norms included)."""
    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / "ops_norm.pb", "-o", out)
    code = (out / "model.py").read_text()
    assert code.count("F.normalize(") == 3, code
    assert "dim=1, eps=1e-6)" in code and "eps=1e-7)" in code, code
    assert "rsqrt" not in code, code


def test_a_table_the_model_computes_is_not_a_layer(tmp_path):
    """Sinusoid frequencies computed from `range` and `pow`, multiplied by the positions, are
    a product (a buffer), not a trainable `nn.Linear`; the real kernel beside them is one
    (parity above)."""
    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / "ops_sinusoid.pb", "-o", out)
    code = (out / "model.py").read_text()
    assert code.count("nn.Linear(") == 1, code


def test_constants_of_one_value_are_numbers_or_made_where_read(tmp_path):
    """A `[1, 1, 4]` scale of eights and a `[1]` offset are numbers (`y * 8.0`, `+ 0.5`); a
    mask of ones is `torch.ones(...)` where it is read: no anonymous `const` buffer holds
    any of them (parity above)."""
    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / "ops_one_value.pb", "-o", out)
    code = (out / "model.py").read_text()
    assert "register_buffer" not in code, code
    assert " * 8.0" in code and " + 0.5" in code, code
    assert code.count("torch.ones((1, 4, 4), device=input_0.device).cumsum(") == 2, code


def test_conversion_is_byte_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run_cli("convert", OPS_DIR / "tf1_cnn.pb", "-o", a)
    run_cli("convert", OPS_DIR / "tf1_cnn.pb", "-o", b)
    for f in ("model.py", "model.safetensors"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_unknown_op_becomes_a_stub_the_user_can_fill(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("convert", OPS_DIR / "unknown_op.pb", "-o", out)
    assert "MyFancyActivation" in proc.stdout
    stub = (out / "custom_ops.py").read_text()
    assert 'def my_fancy_activation(input_0, *, t="float32", cap=6.0):' in stub
    assert "fancy" in stub and "NotImplementedError" in stub
    model = import_model(out).load_model()
    import numpy as np
    import torch

    ref = np.load(OPS_DIR / "unknown_op.npz")
    with pytest.raises(NotImplementedError):
        model(torch.from_numpy(ref["input_0"]))
    # The user fills in the stub (the original op was Relu6) ...
    filled = stub.replace(
        "    raise NotImplementedError(", "    return torch.clamp(input_0, 0.0, cap)\n    raise NotImplementedError(", 1
    )
    (out / "custom_ops.py").write_text(filled)
    assert_parity(out, OPS_DIR / "unknown_op.npz")
    # ... and regenerating keeps their function byte for byte.
    run_cli("convert", OPS_DIR / "unknown_op.pb", "-o", out)
    assert (out / "custom_ops.py").read_text() == filled
    assert_parity(out, OPS_DIR / "unknown_op.npz")


def test_tables_are_looked_up_in_their_keys(tmp_path):
    """A TF1 graph frozen with its table initializer: each table's keys and values are two
    buffers, read by every lookup in it; the lookups are `table_lookup` calls (parity
    above)."""
    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / "ops_table.pb", "-o", out, "--strict")
    code = (out / "model.py").read_text()
    assert code.count("= table_lookup(self.") == 3, code
    assert code.count('_keys", torch.empty') == 2, code
    assert "table_lookup(self.weights_keys, self.weights_values, y, -1.0)" in code, code


def test_a_mask_applied_in_arithmetic_is_attention_too(tmp_path):
    """GPT-2 (OpenAI's code and Hugging Face's TF port) masks its scores with a float mask,
    `w * b - 1e10 * (1 - b)`: that is `where(mask, w, -1e10)`, and both attentions are
    `F.scaled_dot_product_attention` (were: an explicit softmax); parity above."""
    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / "gpt2_attention.pb", "-o", out, "--strict")
    code = (out / "model.py").read_text()
    assert code.count("F.scaled_dot_product_attention(q") == 2, code
    assert "softmax" not in code and "1.0 -" not in code, code
    # The mask of n queries over m keys: a triangle shifted by m - n (was eight lines of
    # ranges).
    assert "dtype=torch.bool, device=q.device).tril(\n            k.shape[2] - q.shape[2]\n        )" in code, code
    assert "torch.arange" not in code, code


def test_masks_added_one_after_the_other_are_one_sdpa_mask(tmp_path):
    """Hugging Face's CLIP adds its causal mask to the scores, then the padding mask: the two
    are summed into one `attn_mask` for `F.scaled_dot_product_attention` (was an explicit
    softmax); parity above."""
    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / "clip_attention.pb", "-o", out, "--strict")
    code = (out / "model.py").read_text()
    assert "F.scaled_dot_product_attention(q, k, v, attn_mask=mask)" in code, code
    assert re.search(r"mask = h \+ \w+\n", code) and "softmax" not in code, code


def test_a_frozen_table_is_a_stub_without_a_handle_input(tmp_path):
    """Freezing a Keras model drops its lookup table's contents and leaves a resource
    `Placeholder`: the lookup is a stub saying so, `forward` takes only the ids (the handle
    is no tensor), and what follows has the keys' shape, so the stub filled in with the
    vocabulary matches TF at any batch size (the stub's shape was once taken from the
    handle, a scalar, and a batch size of 4 folded into the code after it)."""
    out = tmp_path / "out"
    proc = run_cli("convert", OPS_DIR / "frozen_table.pb", "-o", out)
    assert "freezing drops them" in proc.stdout, proc.stdout
    assert list(inspect.signature(import_model(out).load_model().forward).parameters) == ["ids"]
    code = (out / "model.py").read_text()
    assert "custom_ops.lookup_table_find_v2(None, ids, 0)" in code, code
    stub = (out / "custom_ops.py").read_text()
    vocabulary = "    keys = torch.tensor([3, 7, 11, 42, 100])\n    hit = input_1.unsqueeze(-1) == keys\n"
    filled = stub.replace(
        "    raise NotImplementedError(",
        vocabulary + "    return torch.where(hit.any(-1), hit.int().argmax(-1) + 1, input_2)\n    raise NotImplementedError(",
        1,
    )
    (out / "custom_ops.py").write_text(filled)
    assert_parity(out, OPS_DIR / "frozen_table.npz")


def test_stub_inside_a_loop_is_called_each_step(tmp_path):
    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / "loop_unknown_op.pb", "-o", out)
    assert "custom_ops.my_fancy_activation(" in (out / "model.py").read_text()
    stub = (out / "custom_ops.py").read_text()
    # The original op was Relu6.
    filled = stub.replace(
        "    raise NotImplementedError(", "    return torch.clamp(input_0, 0.0, 6.0)\n    raise NotImplementedError(", 1
    )
    (out / "custom_ops.py").write_text(filled)
    errors = assert_parity(out, OPS_DIR / "loop_unknown_op.npz")
    print(f"loop_unknown_op: max rel. error {max(errors):.3g}")
    for f in ("model.py", "custom_ops.py"):
        assert ruff("format", "--no-cache", "--diff", str(out / f)).returncode == 0, f


def test_strict_fails_on_untranslated_ops(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("convert", OPS_DIR / "unknown_op.pb", "-o", out, "--strict", check=False)
    assert proc.returncode == 2
    assert "MyFancyActivation" in proc.stderr
    assert not out.exists()


def test_outputs_and_class_name_options(tmp_path):
    import numpy as np
    import torch

    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / "tf1_cnn.pb", "-o", out, "--outputs", "output_1:0", "--class-name", "TinyNet")
    module = import_model(out)
    model = module.load_model()
    assert type(model).__name__ == "TinyNet"
    ref = np.load(OPS_DIR / "tf1_cnn.npz")
    with torch.no_grad():
        logits = model(torch.from_numpy(ref["input_0"]))
    assert not isinstance(logits, tuple)
    from conftest import rel_error

    assert rel_error(logits.numpy(), ref["output_1"]) <= 1e-4


def test_bad_class_name_is_refused(tmp_path):
    proc = run_cli("convert", OPS_DIR / "tf1_cnn.pb", "-o", tmp_path / "o", "--class-name", "a b", check=False)
    assert proc.returncode != 0 and "class" in proc.stderr


def test_random_ops_sample_the_same_distributions(tmp_path):
    """Each sampler gives TF's shape and dtype and stays in its distribution's range; the
    reparameterised output is centred on its input."""
    import numpy as np
    import torch

    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / "ops_random.pb", "-o", out, "--strict")
    ref = np.load(OPS_DIR / "ops_random.npz")
    model = import_model(out).load_model()
    torch.manual_seed(0)
    with torch.no_grad():
        got = [g.numpy() for g in model(torch.from_numpy(ref["input_0"]), torch.from_numpy(ref["input_1"]))]
    for i, g in enumerate(got):
        want = ref[f"output_{i}"]
        assert g.shape == want.shape and g.dtype == want.dtype, (i, g.shape, g.dtype, want.shape, want.dtype)
    uniform, truncated, ints, classes, shuffled, noisy, stateless = got
    assert ((0 <= uniform) & (uniform < 1)).all() and ((0 <= stateless) & (stateless < 1)).all()
    assert np.abs(truncated).max() <= 2 and 0.7 < truncated.std() < 0.95  # TF's: 0.88
    assert ((3 <= ints) & (ints < 9)).all()
    assert set(classes[1]) == {2} and set(classes[0]) <= {0, 1}
    assert sorted(shuffled.ravel()) == sorted(ref["input_0"].ravel())
    assert not np.array_equal(noisy, ref["input_0"])
