#!/usr/bin/env bash
# Conversion time of ResNet50's frozen graph vs. `cp` of the same file, and peak memory vs.
# the weights' size. Needs build/fixtures/keras_resnet50.pb (scripts/test.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
pb=build/fixtures/keras_resnet50.pb
[ -f "$pb" ] || { echo "missing $pb: run scripts/test.sh first"; exit 1; }
cargo build --release --quiet
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
best() { local b=999; for _ in 1 2 3 4 5 6 7 8 9 10; do s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); b=$(echo "$e - $s" | bc | awk -v b="$b" '{print ($1<b)?$1:b}'); done; echo "$b"; }
t_cp=$(best cp "$pb" "$tmp/copy.pb")
t_conv=$(best ./target/release/tf2torch convert "$pb" -o "$tmp/out")
rss_kb=$(/usr/bin/time -f %M ./target/release/tf2torch convert "$pb" -o "$tmp/out2" 2>&1 >/dev/null | tail -1)
weights=$(stat -c %s "$tmp/out/model.safetensors")
echo "cp: ${t_cp}s  convert: ${t_conv}s  ratio: $(echo "$t_conv / $t_cp" | bc -l | cut -c1-5)"
echo "peak RSS: $((rss_kb / 1024)) MiB  weights: $((weights / 1048576)) MiB  ratio: $(echo "$rss_kb * 1024 / $weights" | bc -l | cut -c1-5)"
sm=build/fixtures/keras_resnet50_saved
if [ -d "$sm" ]; then
  t_sm=$(best ./target/release/tf2torch convert "$sm" -o "$tmp/out_sm")
  echo "SavedModel: ${t_sm}s  frozen: ${t_conv}s  ratio: $(echo "$t_sm / $t_conv" | bc -l | cut -c1-5)"
fi
