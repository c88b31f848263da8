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
