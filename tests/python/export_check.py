"""Run by test_export.py in a fresh interpreter: torch.export pulls in Triton, whose native
libraries abort a process that has already loaded TensorFlow's (other tests import it).

    python export_check.py OUT_DIR FIXTURE_NPZ export|compile
"""

import sys
from pathlib import Path

import numpy as np
import torch
from conftest import TOLERANCE, import_model, rel_error


def main(out_dir, npz, mode):
    model = import_model(Path(out_dir)).load_model()
    ref = np.load(npz)
    n_in = len([k for k in ref if k.startswith("input_")])
    inputs = tuple(torch.from_numpy(ref[f"input_{i}"]) for i in range(n_in))
    wants = [ref[f"output_{i}"] for i in range(len(ref.files) - n_in)]
    if mode == "export":
        batch = torch.export.Dim("batch", min=1, max=64)
        shapes = tuple({0: batch} for _ in inputs)
        run = torch.export.export(model, inputs, dynamic_shapes=shapes).module()
    else:
        run = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        got = run(*inputs)
    got = got if isinstance(got, tuple) else (got,)
    for i, (g, w) in enumerate(zip(got, wants)):
        e = rel_error(g.numpy(), w)
        assert e <= TOLERANCE, f"output {i}: rel. error {e:.3g}"


if __name__ == "__main__":
    main(*sys.argv[1:])
