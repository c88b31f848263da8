"""Bounded memory: weights stream from the memory-mapped model file to model.safetensors one
tensor at a time, each tensor's pages given back once written. Peak RSS of a conversion stays
under 1.1x the weights and under the largest tensor plus 256 MiB (whichever is smaller), for
frozen graphs and SavedModels (whose variables are checksummed at load, then given back)."""

import json
import struct
import subprocess
import sys

import pytest
from conftest import GENERATED_DIR, binary

MIB = 1 << 20

# Runs the binary in a child of a fresh interpreter: RUSAGE_CHILDREN is then that one run's peak.
PEAK = "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"


def peak_rss(*args):
    proc = subprocess.run([sys.executable, "-c", PEAK, binary(), *map(str, args)], capture_output=True, text=True, check=True)
    code, kib = proc.stdout.split()
    assert code == "0", proc.stderr
    return int(kib) * 1024


def tensor_sizes(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return [e - s for k, (s, e) in ((k, v["data_offsets"]) for k, v in header.items() if k != "__metadata__")]


@pytest.mark.parametrize("name", ["keras_resnet50.pb", "keras_resnet50_saved", "keras_hub_bert_base.pb"])
def test_peak_memory_is_bounded(name, tmp_path):
    model = GENERATED_DIR / name
    if not model.exists():
        pytest.fail(f"{model} missing: run scripts/test.sh")
    out = tmp_path / "out"
    peak = peak_rss("convert", model, "-o", out)
    sizes = tensor_sizes(out / "model.safetensors")
    weights, largest = sum(sizes), max(sizes)
    bound = min(1.1 * weights, largest + 256 * MIB)
    print(f"{name}: peak RSS {peak / MIB:.0f} MiB = {peak / weights:.2f}x weights ({weights / MIB:.0f} MiB)")
    assert peak <= bound, f"peak RSS {peak / MIB:.0f} MiB > {bound / MIB:.0f} MiB"
