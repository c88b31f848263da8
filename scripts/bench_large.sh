#!/usr/bin/env bash
# Synthetic large-model benchmark (not a test): a TF-made SavedModel of GB variables (default
# 12 x 256 MiB = 3 GiB; LARGE_VARS=40 makes 10 GiB given 20 GiB of free disk) converts with
# bounded memory. Prints conversion time against `cp` of the SavedModel, and peak RSS against
# the weights and against the largest tensor.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${LARGE_VARS:-12}
sm=build/bench/large_saved_$n
cargo build --release --quiet
if [ ! -d "$sm" ]; then
  mkdir -p build/bench
  TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python - "$sm" "$n" <<'PY'
import sys
import numpy as np
import tensorflow as tf

path, n = sys.argv[1], int(sys.argv[2])


class Large(tf.Module):
    """y = sum_i tanh(x @ w_i): every 8192 x 8192 variable (256 MiB) is needed."""

    def __init__(self):
        r = np.random.default_rng(0)
        self.w = [tf.Variable(r.standard_normal((8192, 8192), dtype=np.float32) * 0.01, name=f"w{i}") for i in range(n)]

    @tf.function(input_signature=[tf.TensorSpec([None, 8192], tf.float32, name="x")])
    def __call__(self, x):
        return tf.add_n([tf.tanh(tf.matmul(x, w)) for w in self.w])


tf.saved_model.save(Large(), path)
print(f"wrote {path}")
PY
fi
tmp=build/bench/out; rm -rf "$tmp" "$tmp.cp"
s=$(date +%s.%N); cp -r "$sm" "$tmp.cp"; sync; e=$(date +%s.%N); t_cp=$(echo "$e - $s" | bc); rm -rf "$tmp.cp"
s=$(date +%s.%N)
rss_kb=$(/usr/bin/time -f %M ./target/release/tf2torch convert "$sm" -o "$tmp" --quiet 2>&1 | tail -1); sync
e=$(date +%s.%N); t_conv=$(echo "$e - $s" | bc)
weights=$(du -cb "$tmp"/*.safetensors | tail -1 | cut -f1)
largest=$((8192 * 8192 * 4))
echo "weights: $((weights / 1048576)) MiB in $(ls "$tmp"/*.safetensors | wc -l) file(s)"
echo "cp: ${t_cp}s  convert: ${t_conv}s  ratio: $(echo "$t_conv / $t_cp" | bc -l | cut -c1-5)"
echo "peak RSS: $((rss_kb / 1024)) MiB = $(echo "$rss_kb * 1024 / $weights" | bc -l | cut -c1-5)x weights," \
  "largest tensor + $(((rss_kb * 1024 - largest) / 1048576)) MiB"
rm -rf "$tmp"
