"""check.py and make_reference.py, written by every conversion: TensorFlow's outputs on
random inputs, and a check of model.py against them that fails on a wrong weight."""

import json
import struct
import subprocess
import sys

import pytest

from conftest import GENERATED_DIR, OPS_DIR, ruff, run_cli


def run_py(script, *args):
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True)


def convert_and_reference(model, out):
    run_cli("convert", model, "-o", out)
    made = run_py(out / "make_reference.py")
    assert made.returncode == 0, made.stderr
    assert (out / "reference.safetensors").exists()


def perturb_weight(path, key):
    """Adds 0.5 to the first element of `key` in a .safetensors file."""
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    start = 8 + n + header[key]["data_offsets"][0]
    (v,) = struct.unpack("<f", data[start : start + 4])
    data[start : start + 4] = struct.pack("<f", v + 0.5)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "model, weight",
    [(GENERATED_DIR / "sm_keras_export", "conv.weight"), (OPS_DIR / "tf1_cnn.pb", "conv1.weight")],
)
def test_check_passes_then_fails_on_a_wrong_weight(model, weight, tmp_path):
    if not model.exists():
        pytest.fail(f"{model} missing: run scripts/test.sh")
    out = tmp_path / "out"
    convert_and_reference(model, out)
    ok = run_py(out / "check.py")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASS" in ok.stdout and "FAIL" not in ok.stdout
    perturb_weight(out / "model.safetensors", weight)
    bad = run_py(out / "check.py")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL" in bad.stdout
    # A loose enough tolerance accepts it again: the option is honoured.
    assert run_py(out / "check.py", "--tolerance", "1e9").returncode == 0


def test_validation_scripts_are_ruff_clean(tmp_path):
    out = tmp_path / "out"
    run_cli("convert", GENERATED_DIR / "sm_export_archive", "-o", out)
    for f in ("check.py", "make_reference.py"):
        assert ruff("check", "--no-cache", str(out / f)).returncode == 0, f
        assert ruff("format", "--no-cache", "--check", str(out / f)).returncode == 0, f
