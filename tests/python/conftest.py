"""Shared helpers: run the tf2torch binary, import what it generated, compare with TF."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
OPS_DIR = ROOT / "tests" / "fixtures" / "ops"
GENERATED_DIR = ROOT / "build" / "fixtures"
TOLERANCE = 1e-4


def binary():
    path = os.environ.get("TF2TORCH_BIN", str(ROOT / "target" / "release" / "tf2torch"))
    if not Path(path).exists():
        pytest.fail(f"{path} not built: run `cargo build --release` (scripts/test.sh does)")
    return path


def run_cli(*args, check=True):
    proc = subprocess.run([binary(), *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"tf2torch {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def import_model(out_dir):
    """Imports out_dir/model.py as a fresh module (custom_ops resolved from out_dir)."""
    sys.path.insert(0, str(out_dir))
    try:
        sys.modules.pop("custom_ops", None)
        name = f"generated_{abs(hash(str(out_dir)))}"
        spec = importlib.util.spec_from_file_location(name, out_dir / "model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(out_dir))


def rel_error(got, want):
    """max |got - want| / max |want|: scale-free, and meaningful where outputs cross zero."""
    want = np.asarray(want, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != TF's {want.shape}"
    if want.size == 0:  # an empty result (a partition nothing went to) matches by shape
        return 0.0
    # Infinities and NaNs TF computed (a log-sum-exp of -inf) must be where TF has them,
    # the same; the error is over the finite values.
    finite = np.isfinite(want)
    same = np.array_equal(got[~finite], want[~finite], equal_nan=True)
    if not same or not finite.any():
        return 0.0 if same else float("inf")
    got, want = got[finite], want[finite]
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def run_generated(out_dir, npz):
    """Runs the generated model on the fixture's inputs; returns (outputs, references)."""
    ref = np.load(npz)
    inputs = [torch.from_numpy(ref[f"input_{i}"]) for i in range(len([k for k in ref if k.startswith("input_")]))]
    wants = [ref[f"output_{i}"] for i in range(len([k for k in ref if k.startswith("output_")]))]
    model = import_model(out_dir).load_model()
    with torch.no_grad():
        got = model(*inputs)
    got = got if isinstance(got, tuple) else (got,)
    return [g.numpy() for g in got], wants


def assert_parity(out_dir, npz, tolerance=None):
    got, wants = run_generated(out_dir, npz)
    assert len(got) == len(wants), f"{len(got)} outputs, TF has {len(wants)}"
    for i, (g, w) in enumerate(zip(got, wants)):
        assert g.dtype == w.dtype, f"output {i}: dtype {g.dtype}, TF's is {w.dtype}"
    errors = [rel_error(g, w) for g, w in zip(got, wants)]
    tolerance = TOLERANCE if tolerance is None else tolerance
    for i, e in enumerate(errors):
        assert e <= tolerance, f"output {i}: rel. error {e:.3g} > {tolerance}"
    return errors


def ruff(*args):
    return subprocess.run([sys.executable, "-m", "ruff", *args], capture_output=True, text=True)


def generated(name, how="scripts/test.sh"):
    """A TF-made fixture under build/fixtures; a clear failure when it has not been made."""
    path = GENERATED_DIR / name
    if not path.exists():
        pytest.fail(f"{path} missing: run {how}")
    return path


def convert_fails(model, tmp_path, *extra):
    """`convert` refuses `model`: non-zero exit, a one-line error (returned), no panic, no
    output folder."""
    out = tmp_path / "out"
    proc = run_cli("convert", model, "-o", out, *extra, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "panicked" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists()
    return proc.stderr
