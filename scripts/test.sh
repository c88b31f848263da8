#!/usr/bin/env bash
# Runs every test: formatting and clippy, Rust unit/snapshot/CLI/bundle tests, and the Python
# end-to-end suite. Fixtures too large to commit (keras.applications models, SavedModels, a
# 6000-variable checkpoint) are generated with TensorFlow into build/fixtures first.
set -euo pipefail
cd "$(dirname "$0")/.."
# Everything Rust builds in the release profile only: a second (debug) profile's artifacts
# are ~3 GB more disk, which a CI machine has run out of.
df -h . | tail -n 1 | awk '{print "disk: " $4 " free"}'
WITH_TF=1 scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --release --all-targets --quiet -- -D warnings

mkdir -p build/fixtures
missing=()
for m in keras_mobilenet keras_mobilenet_v2 keras_resnet50 keras_efficientnet_b0 keras_inception_v3 keras_densenet121; do
  [ -f "build/fixtures/$m.npz" ] && [ -d "build/fixtures/${m}_saved" ] || missing+=("$m")
done
for m in sm_module sm_input_names sm_shared_variable sm_sharded frozen_with_function sm_no_variables sm_keras_export sm_lookup_keras sm_lookup_table sm_string_lookup \
  sm_export_archive many_variables; do
  [ -f "build/fixtures/$m.npz" ] || missing+=("$m")
done
[ -f build/fixtures/diff_added.npz ] || missing+=(diff_variants)
[ -f build/fixtures/diff_resnet.npz ] || missing+=(diff_resnet)
[ -f build/fixtures/sm_bert_dynamic_16.npz ] || missing+=(sm_bert_dynamic)
for m in keras_text_cnn keras_unet keras_convnext_tiny keras_vgg16_small keras_xception_small keras_hub_bert_small keras_hub_bert_base; do
  [ -f "build/fixtures/$m.npz" ] || missing+=("$m")
done
for m in rnn_lstm_gru rnn_bidirectional rnn_stacked_state rnn_variable_length rnn_conv_lstm \
  rnn_simple_time_distributed rnn_gru_reset_before rnn_masked rnn_masked_bidirectional rnn_keras2 rnn_variants rnn_unrolled tf_while_refine \
  tf_while_growing tf_nested_while tf_while_decode tf_counted_loops tf_unrolled_loops; do
  [ -f "build/fixtures/$m.npz" ] && [ -d "build/fixtures/${m}_saved" ] || missing+=("$m")
done
[ -f build/fixtures/tf1_dynamic_rnn.npz ] || missing+=(tf1_dynamic_rnn)
[ -f build/fixtures/cascade_mobilenet_b.npz ] && [ -f build/fixtures/keras_mobilenet_v3_small_b.npz ] && [ -f build/fixtures/keras_hub_dinov3_b.npz ] \
  && [ -f build/fixtures/keras_nasnet_mobile_b.npz ] && [ -f build/fixtures/keras_hub_t5_b.npz ] \
  && [ -f build/fixtures/keras_hub_bloom_b.npz ] && [ -f build/fixtures/audio_features_b.npz ] \
  && [ -f build/fixtures/seq2seq_attention_b.npz ] && [ -f build/fixtures/keras_channels_first_b.npz ] \
  && [ -f build/fixtures/dyn_pools_b.npz ] && [ -f build/fixtures/dyn_tcn_b.npz ] \
  && [ -f build/fixtures/keras_mixed_precision_b.npz ] && [ -f build/fixtures/keras_hub_llama_bf16_b.npz ] \
  && [ -f build/fixtures/keras_hub_gemma_bf16_b.npz ] && [ -f build/fixtures/keras_hub_rwkv7_b.npz ] \
  && [ -f build/fixtures/keras_hub_qwen_moe_b.npz ] \
  && [ -f build/fixtures/keras_hub_albert_b.npz ] && [ -f build/fixtures/single_head_attention_b.npz ] \
  && [ -f build/fixtures/keras_hub_gemma4_saved_b.npz ] && [ -f build/fixtures/video_frames_b.npz ] \
  && [ -f build/fixtures/keras_hub_vit_b.npz ] && [ -f build/fixtures/keras_hub_roformer_v2_b.npz ] \
  && [ -f build/fixtures/keras_hub_hgnetv2_b.npz ] && [ -f build/fixtures/keras_hub_flux_b.npz ] \
  && [ -f build/fixtures/keras_hub_mmdit_b.npz ] && [ -f build/fixtures/keras_hub_moonshine_b.npz ] \
  && [ -f build/fixtures/keras_hub_siglip_b.npz ] && [ -f build/fixtures/keras_hub_gemma_int4_b.npz ] \
  || missing+=(general)
[ -f build/fixtures/keras_flat_transformer_b.npz ] || missing+=(keras_flat_transformer)
[ -f build/fixtures/keras_hub_vitdet_b.npz ] || missing+=(keras_hub_vitdet)
[ -f build/fixtures/keras_conv_mixer_b.npz ] || missing+=(keras_conv_mixer)
[ -f build/fixtures/dyn_dilated_b.npz ] || missing+=(dyn_dilated)
[ -f build/fixtures/tf_gpt2_block_b.npz ] || missing+=(tf_gpt2_block)
[ -f build/fixtures/keras_diffusion_unet_b.npz ] || missing+=(keras_diffusion_unet)
[ -f build/fixtures/keras_switch_moe_b.npz ] || missing+=(keras_switch_moe)
[ -f build/fixtures/keras_nested_backbone_saved_b.npz ] || missing+=(keras_nested_backbone)
[ -f build/fixtures/keras_subclassed_saved_b.npz ] || missing+=(keras_subclassed)
[ -f build/fixtures/keras_mel_spectrogram_b.npz ] || missing+=(keras_mel_spectrogram)
[ -f build/fixtures/cond_static_shapes_saved_b.npz ] || missing+=(cond_static_shapes)
[ -f build/fixtures/tf1_dynamic_rnn_lengths.npz ] || missing+=(tf1_dynamic_rnn_lengths)
[ -f build/fixtures/tf1_dynamic_rnn_v1.npz ] || missing+=(tf1_dynamic_rnn_v1)
[ -f build/fixtures/tf1_static_rnn.npz ] || missing+=(tf1_static_rnn)
[ -f build/fixtures/norms3d_saved_b.npz ] || missing+=(ranks)
[ -f build/fixtures/tf1_partitioned.npz ] && [ -f build/fixtures/tf1_table.npz ] || missing+=(tf1)
[ -f build/fixtures/sm_missing_key.dropped ] || missing+=(sm_keras_export sm_missing_key)
[ -d build/fixtures/sm_keras_export_text ] || missing+=(sm_keras_export)
if [ ${#missing[@]} -gt 0 ]; then
  echo "generating fixtures with TensorFlow: ${missing[*]}"
  .venv/bin/python tests/fixtures/make_fixtures.py "${missing[@]}" build/fixtures 2>&1 | grep -E '^wrote|Error' || true
fi

# The pip wheel (maturin: the binary plus python/tf2torch), installed by tests/python/test_wheel.py.
rm -rf build/wheels
.venv/bin/maturin build --release --quiet --out build/wheels >build/maturin.log 2>&1 || { cat build/maturin.log; exit 1; }

export TF2TORCH_REQUIRE_FIXTURES=1
cargo test --release --quiet 2>&1 | grep -E '^(test result|error|failures|---- )|panicked' || true
cargo test --release --quiet >/dev/null 2>&1 || { cargo test --release --quiet 2>&1 | tail -n 40; exit 1; }
cd tests/python
../../.venv/bin/python -m pytest -q -p no:cacheprovider
