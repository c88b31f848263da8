#!/usr/bin/env bash
# Runs every test: Rust unit + CLI tests, clippy/fmt, and the Python end-to-end suite
# (per-op graphs, and keras.applications models generated with TensorFlow unless
# TF2TORCH_SKIP_KERAS=1).
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TF=1 scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --quiet 2>&1 | tail -n 30
if [ "${TF2TORCH_SKIP_KERAS:-0}" != 1 ]; then
  mkdir -p build/fixtures
  missing=()
  for m in keras_mobilenet_v2 keras_resnet50 keras_efficientnet_b0 keras_inception_v3 keras_densenet121; do
    [ -f "build/fixtures/$m.npz" ] || missing+=("$m")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    .venv/bin/python tests/fixtures/make_fixtures.py "${missing[@]}" build/fixtures 2>&1 | grep -E '^wrote|Error' || true
  fi
fi
cd tests/python
../../.venv/bin/python -m pytest -q -p no:cacheprovider
