#!/usr/bin/env bash
# Converts the shipped sample model and shows the generated module.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
rm -rf build/demo
./target/release/tf2torch convert samples/small_cnn.pb -o build/demo
echo
cat build/demo/model.py | sed -n '/^class/,/^_DTYPES/p' | head -n -2
echo
.venv/bin/python - <<'PY'
import sys
import numpy as np
import torch
sys.path.insert(0, "build/demo")
import model
m = model.load_model()
print(m)
ref = np.load("samples/small_cnn.npz")
with torch.no_grad():
    y = m(torch.from_numpy(ref["input_0"]))
y = y[0] if isinstance(y, tuple) else y
err = np.abs(y.numpy() - ref["output_0"]).max() / np.abs(ref["output_0"]).max()
print(f"output {tuple(y.shape)}; rel. error vs TensorFlow: {err:.2e}")
PY
