#!/usr/bin/env bash
# Conversion time vs. `cp` of the same file, and peak memory vs. the weights' size, for the
# frozen graphs of ResNet50, BERT-base and VGG16 (one 411 MB dense kernel), and ResNet50's
# SavedModel vs. its frozen graph. Each time is the best of 5 runs in one go on this machine.
# Needs build/fixtures/{keras_resnet50,keras_hub_bert_base}.pb (scripts/test.sh makes them);
# VGG16 is made here with TensorFlow if missing (~1 GB on disk).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
[ -f build/fixtures/keras_vgg16.pb ] || .venv/bin/python tests/fixtures/make_fixtures.py keras_vgg16 build/fixtures \
  2>&1 | grep -E '^wrote|Error' || true
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
best() { local b=999; for _ in 1 2 3 4 5; do rm -rf "$tmp/run"; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); b=$(echo "$e - $s" | bc | awk -v b="$b" '{print ($1<b)?$1:b}'); done; echo "$b"; }
ratio() { echo "$1 / $2" | bc -l | cut -c1-5; }
printf '%-22s %8s %8s %6s %9s %9s %6s\n' model cp_s conv_s ratio rss_MiB wts_MiB ratio
for m in keras_resnet50 keras_hub_bert_base keras_vgg16; do
  pb=build/fixtures/$m.pb
  [ -f "$pb" ] || { echo "$m: missing $pb"; continue; }
  t_cp=$(best cp "$pb" "$tmp/run")
  t_conv=$(best ./target/release/tf2torch convert "$pb" -o "$tmp/run")
  rm -rf "$tmp/out"
  rss_kb=$(/usr/bin/time -f %M ./target/release/tf2torch convert "$pb" -o "$tmp/out" 2>&1 >/dev/null | tail -1)
  weights=$(stat -c %s "$tmp/out/model.safetensors")
  printf '%-22s %8.3f %8.3f %6s %9d %9d %6s\n' "$m" "$t_cp" "$t_conv" "$(ratio "$t_conv" "$t_cp")" \
    $((rss_kb / 1024)) $((weights / 1048576)) "$(ratio $((rss_kb * 1024)) "$weights")"
done
sm=build/fixtures/keras_resnet50_saved
if [ -d "$sm" ]; then
  t_sm=$(best ./target/release/tf2torch convert "$sm" -o "$tmp/run")
  t_pb=$(best ./target/release/tf2torch convert build/fixtures/keras_resnet50.pb -o "$tmp/run")
  echo "ResNet50 SavedModel: ${t_sm}s  frozen: ${t_pb}s  ratio: $(ratio "$t_sm" "$t_pb")"
fi
