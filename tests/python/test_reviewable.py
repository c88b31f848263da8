"""Output people review: regenerating after a one-layer change changes only that layer's lines."""

import difflib

import pytest

from conftest import GENERATED_DIR, OPS_DIR, run_cli


def model_py(name, tmp_path):
    pb = GENERATED_DIR / f"{name}.pb"
    if not pb.exists():
        pytest.fail(f"{pb} missing: run scripts/test.sh")
    out = tmp_path / name
    run_cli("convert", pb, "-o", out, "--class-name", "Net")
    return (out / "model.py").read_text().splitlines()


def changed_lines(a, b):
    return [
        line
        for line in difflib.unified_diff(a, b, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_changed_kernel_size_changes_one_line(tmp_path):
    base, kernel = model_py("diff_base", tmp_path), model_py("diff_kernel", tmp_path)
    changed = [line for line in changed_lines(base, kernel) if "translation of" not in line]
    assert changed == [
        "-        self.body_conv = nn.Conv2d(8, 8, 3, padding=1)",
        "+        self.body_conv = nn.Conv2d(8, 8, 5, padding=2)",
    ]


def test_added_layer_adds_its_lines_only(tmp_path):
    base, added = model_py("diff_base", tmp_path), model_py("diff_added", tmp_path)
    changed = [line for line in changed_lines(base, added) if "translation of" not in line]
    assert all(line.startswith("+") and "extra_conv" in line for line in changed), changed
    assert len(changed) == 2


def test_stub_no_longer_needed_is_reported_and_kept(tmp_path):
    out = tmp_path / "out"
    run_cli("convert", OPS_DIR / "unknown_op.pb", "-o", out)
    stubs = (out / "custom_ops.py").read_text()
    proc = run_cli("convert", OPS_DIR / "tf1_cnn.pb", "-o", out)
    assert "my_fancy_activation() is no longer used" in proc.stdout
    assert (out / "custom_ops.py").read_text() == stubs


def test_changing_one_resnet50_layer_changes_only_its_block(tmp_path):
    """keras.applications.ResNet50 with conv5_block3_2_conv at 5x5 instead of 3x3: the block
    no longer shares its class, so conv5's stack (`conv5_blocks`, blocks 2 and 3) unrolls;
    nothing outside stage conv5 changes."""
    base, changed = model_py("keras_resnet50", tmp_path), model_py("diff_resnet", tmp_path)
    lines = [line for line in changed_lines(base, changed) if "translation of" not in line]
    assert 0 < len(lines) <= 28, lines
    assert all("conv5_block" in line for line in lines if line.startswith("-") and "self." in line), lines
    assert all("conv5_block" in line for line in lines if "self." in line), lines


def test_keras_application_conversion_is_byte_identical(tmp_path):
    pb = GENERATED_DIR / "keras_resnet50.pb"
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        run_cli("convert", pb, "-o", out)
        outs.append(out)
    for f in ("model.py", "model.safetensors", "check.py", "make_reference.py"):
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
