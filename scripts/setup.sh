#!/usr/bin/env bash
# Creates (or reuses) the Python venv the tests and the demo need, and builds tf2torch.
# TensorFlow is installed only for making fixtures and reference outputs (WITH_TF=1).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
need=(torch numpy safetensors pytest ruff maturin)
if [ "${WITH_TF:-0}" = 1 ]; then need+=(tensorflow-cpu==2.21.0 keras==3.15.1); fi
missing=()
for p in "${need[@]}"; do
  mod=${p%%==*}; mod=${mod//-/_}; [ "$mod" = tensorflow_cpu ] && mod=tensorflow
  "$VENV/bin/python" -c "import $mod" 2>/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  "$VENV/bin/pip" install -q --no-cache-dir --disable-pip-version-check "${missing[@]}"
fi
# keras-hub (BERT fixtures) without its tensorflow-text dependency, which would pin another
# TensorFlow: its other requirements are listed by hand.
if [ "${WITH_TF:-0}" = 1 ] && ! "$VENV/bin/python" -c "import keras_hub" 2>/dev/null; then
  "$VENV/bin/pip" install -q --no-cache-dir --disable-pip-version-check --no-deps keras-hub==0.32.0 kagglehub \
    "kagglesdk>=0.1.38,<1.0" tokenizers sentencepiece huggingface_hub regex tqdm pyyaml
fi
# tf_keras (Keras 2, what TF 2.x models before Keras 3 were written with), pinned to the
# TensorFlow above and installed without dependencies so it cannot pull another one.
if [ "${WITH_TF:-0}" = 1 ] && ! "$VENV/bin/python" -c "import tf_keras" 2>/dev/null; then
  "$VENV/bin/pip" install -q --no-cache-dir --disable-pip-version-check --no-deps "tf_keras==2.21.0"
fi
cargo build --release --quiet
