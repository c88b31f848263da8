#!/usr/bin/env bash
# Runs a cargo-fuzz target for SECONDS (default 3600), its corpus seeded from the fixtures:
#
#   scripts/fuzz.sh graphdef|convert|saved_model|bundle|ops|text [SECONDS]
#
# Needs `cargo install cargo-fuzz`. The targets build with the stable toolchain (RUSTC_BOOTSTRAP
# lets it take the sanitizer flags cargo-fuzz passes). Crashes land in fuzz/artifacts/TARGET/;
# make each one a regression test before fixing it. Run scripts/test.sh first: it makes the
# TensorFlow fixtures the seeds come from.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}
seconds=${2:-3600}
corpus=fuzz/corpus/$target
mkdir -p "$corpus" fuzz/seeds
seed() { for f in "$@"; do [ -f "$f" ] && cp -n "$f" "$corpus/$(echo "$f" | tr '/' '_')"; done; true; }
case "$target" in
  graphdef|convert) seed tests/fixtures/ops/*.pb samples/*.pb build/fixtures/rnn_*.pb build/fixtures/tf_*.pb \
                      build/fixtures/tf1_*.pb build/fixtures/frozen_with_function.pb build/fixtures/diff_base.pb \
                      build/fixtures/keras_hub_gpt2.pb build/fixtures/keras_hub_llama.pb build/fixtures/keras_hub_deberta.pb ;;
  saved_model) seed build/fixtures/*_saved/saved_model.pb build/fixtures/sm_*/saved_model.pb
               rm -rf fuzz/seeds/saved_model_variables
               cp -r build/fixtures/sm_module/variables fuzz/seeds/saved_model_variables ;;
  bundle) seed build/fixtures/sm_*/variables/variables.index build/fixtures/rnn_*_saved/variables/variables.index ;;
  text) seed build/fixtures/tf1_text_graph.pbtxt ;;
  ops) ;; # random graphs over the registry's ops (tests/common/op_graphs.rs): no seeds needed
  *) echo "unknown target $target"; exit 2 ;;
esac
export RUSTC_BOOTSTRAP=1
# 2 GiB for the process, 10 s per input: a hang or a runaway allocation is a finding too.
cargo fuzz run --release --debug-assertions "$target" "$corpus" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
