"""Checks model.py against what TensorFlow computed for the original model.

    python make_reference.py      # where TensorFlow is installed: writes reference.safetensors
    python check.py [--tolerance 1e-4]

Prints, per output, the largest absolute error and the error relative to the largest
reference value, and PASS/FAIL against the tolerance. Exits non-zero on any FAIL.
"""

import argparse
import importlib.util
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
NUM_INPUTS = {{ num_inputs }}


def load_generated():
    """model.py beside this file."""
    path = os.path.join(HERE, "model.py")
    spec = importlib.util.spec_from_file_location("model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument(
        "--reference", default=os.path.join(HERE, "reference.safetensors")
    )
    args = parser.parse_args()
    model = load_generated()
    ref = model._read_safetensors(args.reference)
    inputs = [ref[f"input_{i}"] for i in range(NUM_INPUTS)]
    net = model.load_model()
    with torch.no_grad():
        got = net(*inputs)
    got = got if isinstance(got, tuple) else (got,)
    failed = False
    for i, out in enumerate(got):
        want = ref[f"output_{i}"].double()
        diff = (out.double() - want).abs().max().item() if want.numel() else 0.0
        scale = want.abs().max().item() if want.numel() else 0.0
        rel = diff / scale if scale > 0 else diff
        ok = tuple(out.shape) == tuple(want.shape) and rel <= args.tolerance
        failed |= not ok
        status = "PASS" if ok else "FAIL"
        print(f"output_{i}: max abs {diff:.3g}, rel {rel:.3g}  {status}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
