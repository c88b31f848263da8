"""Graphs as people write them: sizes computed at run time (`tf.shape(x)[0]` in Tile, Reshape,
Fill, Pack, resize, pad and slices) and sizes that are data, `tf.cond` frozen (Switch/Merge),
in a SavedModel (StatelessIf) and in TF1. Each converts once and matches TensorFlow for two
input sizes. Fixtures: tests/fixtures/general.py (make_fixtures.py general build/fixtures)."""

import ast
import re
import subprocess
import sys

import pytest
from conftest import GENERATED_DIR, assert_parity, import_model, ruff, run_cli, run_generated

COND = ["cond_function", "cond_function_saved", "cond_keras_layer", "cond_keras_layer_saved", "cond_tf1"]
COND += ["case_function", "case_function_saved", "cond_static_shapes", "cond_static_shapes_saved"]
# keras-hub backbones with a run-time batch and sequence length.
DECODERS = ["keras_hub_gpt2", "keras_hub_llama", "keras_hub_gemma", "keras_hub_gemma4", "keras_hub_deberta", "keras_hub_fnet"]
DECODERS += ["keras_hub_esm2"]
DECODERS += ["keras_hub_falcon", "keras_hub_smollm3", "keras_hub_dinov3", "keras_hub_t5", "keras_hub_bloom"]
DECODERS += ["keras_hub_albert", "keras_hub_roformer_v2", "keras_hub_vit", "keras_hub_hgnetv2", "keras_hub_flux"]
DECODERS += ["keras_hub_mmdit", "keras_hub_moonshine", "keras_hub_siglip", "keras_hub_qwen_moe"]
DECODERS += ["keras_hub_vitdet", "keras_hub_rwkv7"]
DYNAMIC = ["dyn_class_token", "dyn_reshape", "dyn_fill_pack", "dyn_data_sizes", "dyn_resize_like", "dyn_pad_slice", "dyn_upsample", "dtypes_kept", "any_size_mobilenet"]
DYNAMIC += ["keras_mobilenet_v3_small", "keras_nasnet_mobile", "audio_features"]
DYNAMIC += ["seq2seq_attention", "keras_channels_first", "dyn_pools", "dyn_tcn", "single_head_attention"]
DYNAMIC += ["video_frames", "keras_flat_transformer", "keras_conv_mixer", "dyn_dilated", "tf_gpt2_block"]
DYNAMIC += ["keras_diffusion_unet", "keras_switch_moe", "keras_nested_backbone", "keras_nested_backbone_saved"]
DYNAMIC += ["keras_mel_spectrogram", "keras_prelu"]


def source(name):
    path = GENERATED_DIR / (name if name.endswith("_saved") else f"{name}.pb")
    if not path.exists():
        pytest.fail(f"{path} missing: run tests/fixtures/make_fixtures.py general build/fixtures")
    return path


@pytest.mark.parametrize("name", DYNAMIC + COND + DECODERS)
def test_converts_once_and_matches_for_every_input_size(name, tmp_path):
    out = tmp_path / "out"
    run_cli("convert", source(name), "-o", out, "--strict")
    assert ruff("check", "--no-cache", str(out / "model.py")).returncode == 0
    # Laid out as `ruff format` lays it out (long sizes computed at run time included).
    assert ruff("format", "--no-cache", "--check", str(out / "model.py")).returncode == 0
    for suffix in ("", "_b"):
        assert_parity(out, GENERATED_DIR / f"{name}{suffix}.npz")


@pytest.mark.parametrize("name", ["cond_static_shapes", "cond_static_shapes_saved"])
def test_a_condition_known_from_shapes_is_straight_line_code(name, tmp_path):
    """Swin's window size, shift and padding are `tf.cond`s on sizes: once shapes are known
    each runs one branch, so the module pads, rolls and crops by constants (parity with TF for
    two batch sizes is in the test above)."""
    out = tmp_path / "out"
    run_cli("convert", source(name), "-o", out)
    code = (out / "model.py").read_text()
    assert "if pred" not in code and "def cond" not in code, code
    assert "F.pad(x, (0, 0, 0, 2, 0, 2))" in code, code
    assert "torch.roll(x, (-2, -2), dims=(1, 2))" in code, code


def test_a_mixed_precision_model_computes_in_float16(tmp_path):
    """Keras' mixed_float16: the float16 parts stay float16, their layers made in float16
    (the float32 weights Keras casts where used, rounded once as TF rounds them), its norms
    in float32; its GELU, written with float16 constants, is `F.gelu`. float16 has 11
    significant bits and TF and torch round its sums differently: parity within 2e-3."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_mixed_precision"), "-o", out, "--strict")
    assert ruff("check", "--no-cache", str(out / "model.py")).returncode == 0
    code = (out / "model.py").read_text()
    flat = re.sub(r"\s+", "", code)
    assert "nn.Conv2d(3,8,3,padding=1,dtype=torch.float16)" in flat, code
    assert "F.gelu(" in code and "nn.LayerNorm(8" in flat, code
    for suffix in ("", "_b"):
        assert_parity(out, GENERATED_DIR / f"keras_mixed_precision{suffix}.npz", tolerance=2e-3)


def test_a_bfloat16_model_computes_in_bfloat16(tmp_path):
    """A keras-hub preset loaded in bfloat16: its layers are made in bfloat16
    (`nn.Linear(..., dtype=torch.bfloat16)`, an embedding too), its norms computed in float32
    as Keras does. bfloat16 keeps 8 significant bits, and TF and torch round apart: TF rounds
    the attention scores to bfloat16 before their float32 softmax, SDPA does not. Through two
    layers TF's bfloat16 outputs lie 0.7-0.8e-2 from the same model's in float32
    (`keras_hub_llama`: same seed, weights and inputs), ours 0.5-0.7e-2, and the two 0.4-0.5e-2
    from each other (measured). So: parity within 3e-2, and ours at least about as near the
    float32 model as TF's."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_llama_bf16"), "-o", out, "--strict")
    assert ruff("check", "--no-cache", str(out / "model.py")).returncode == 0
    code = (out / "model.py").read_text()
    flat = re.sub(r"\s+", "", code)
    assert "nn.Linear(32,64,bias=False,dtype=torch.bfloat16)" in flat, code
    assert "nn.Embedding(500,32,dtype=torch.bfloat16)" in flat, code
    # Its RMSNorm weights, which Keras applies in float32, are the norms' weights.
    assert "nn.RMSNorm(32,eps=1e-6)" in flat, code
    assert not re.search(r"register_buffer\([^)]*bfloat16", flat), code
    # Its attention, scores widened to float32 for the softmax, is SDPA's (which computes a
    # bfloat16 softmax in float32 too), its rotation the float32 model's one helper with the
    # tables made once for every layer, in float32 as Keras makes them.
    assert "F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)" in code, code
    assert code.count("= apply_rotary(x, angles)") == 2 and code.count("torch.einsum") == 1, code
    assert_bfloat16_parity(out, "keras_hub_llama_bf16", "keras_hub_llama")


def assert_bfloat16_parity(out, name, float32_name=None):
    """The bfloat16 model converted into `out` within 3e-2 of TF's outputs at both input
    sizes; with `float32_name` (the same model in float32: same seed, weights and inputs),
    at least about as near (within half again) its outputs as TF's bfloat16 outputs are."""
    import numpy as np

    for suffix in ("", "_b"):
        assert_parity(out, GENERATED_DIR / f"{name}{suffix}.npz", tolerance=3e-2)
        if float32_name is None:
            continue
        (got,), (tf_bf16,) = run_generated(out, GENERATED_DIR / f"{name}{suffix}.npz")
        f32 = np.load(GENERATED_DIR / f"{float32_name}{suffix}.npz")
        bf16 = np.load(GENERATED_DIR / f"{name}{suffix}.npz")
        assert all(np.array_equal(f32[k], bf16[k]) for k in ("input_0", "input_1"))
        want = f32["output_0"]
        ours, tfs = (np.abs(np.asarray(v, np.float32) - want).max() for v in (got, tf_bf16))
        assert ours <= 1.5 * tfs, (ours, tfs)


def test_a_bfloat16_grouped_attention_is_sdpa(tmp_path):
    """Gemma in bfloat16: its grouped-query attention, 5-D einsums around a float32 softmax
    (the scores widened for it, the probabilities narrowed back), reads as the float32
    model's: SDPA with `enable_gqa`, no softmax or 5-D einsum left, every layer one class
    reading one mask and one rotary table. Within 3e-2 of TF (2.0e-2 and 0.8e-2 measured, the
    written-out attention 0.9e-2 and 0.8e-2). keras-hub's Gemma draws other initial weights
    in bfloat16 than in float32, so `keras_hub_gemma` is no float32 twin to compare with."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_gemma_bf16"), "-o", out, "--strict")
    assert ruff("check", "--no-cache", str(out / "model.py")).returncode == 0
    code = (out / "model.py").read_text()
    assert "F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)" in code, code
    assert "softmax" not in code and "abcde" not in code, code
    assert "nn.ModuleList" in code and code.count("torch.einsum") == 1, code
    assert_bfloat16_parity(out, "keras_hub_gemma_bf16")


def test_a_time_loop_traced_step_by_step_is_a_loop_again(tmp_path):
    """RWKV-7's delta rule loops over the sequence in Python, so it is traced for one length
    (12): the graph holds twelve copies of each step, reading `r[:, t]`, `w[:, t]`, ... and
    the state the step before left, each output written to a list at index `t`, the list
    stacked. Found by structure, the steps are one `for step in range(12):` again, in one
    function both layers call (it reads no layer), the outputs `torch.stack(.., dim=1)`; the
    layers stay block classes. The group norm after it, on `x.reshape(-1, C)` of the stacked
    `[B, T, H, D]` outputs (the two reshapes fold into one), is `nn.GroupNorm` too. Parity
    with TF for two batch sizes is in the test above."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_rwkv7"), "-o", out, "--strict")
    code = (out / "model.py").read_text()
    assert code.count("for step in range(12):") == 1, code
    assert code.count("\ndef rwkv_time_mix_loop(") == 1 and code.count("rwkv_time_mix_loop(") == 3, code
    assert "class RwkvLayer(nn.Module):" in code, code
    # No step is left written out: nothing reads one step's slice by a constant index.
    assert re.search(r"\[:, ([1-9]|1[01])[],]", code) is None, code
    assert re.search(r"torch\.stack\(\w+, dim=1\)", code), code
    assert ".permute(1, 0, 2, 3)" not in code and "stack_written" not in code, code
    assert code.count("nn.GroupNorm(2, 32, eps=0.00064)") == 2 and ".mean(" not in code, code


@pytest.mark.parametrize("name", ["keras_hub_llama_int8", "keras_hub_gemma_int4"])
def test_a_quantized_model_keeps_its_integer_weights(name, tmp_path):
    """keras-hub backbones after `model.quantize("int8")` and `("int4")`: int8 inputs times
    int8 kernels summed in int32 (torch keeps int8 products int8, where sums wrap), int4
    weights unpacked from int8 by shifts and masks; each int8 layer's input quantized by one
    helper, `quantize_int8`. The quantized weights stay int8 buffers
    (a quarter of their float32 size), cast where used as the model casts them; the float
    scales are parameters. Parity with TF's quantized model for two input sizes, token by
    token: each layer rounds each token's activations to int8, and where one lies within
    float32 rounding of a half step, TF and torch may round it apart, one int8 step (1/127
    of the token's largest activation) that carries through that token alone. So nearly
    every token matches to 1e-4 and every one to within such a step."""
    import numpy as np

    out = tmp_path / "out"
    run_cli("convert", source(name), "-o", out, "--strict")
    assert ruff("check", "--no-cache", str(out / "model.py")).returncode == 0
    code = (out / "model.py").read_text()
    int8_buffers = re.findall(r'register_buffer\(\s*"\w+",\s*torch\.empty\(\([^)]*\), dtype=torch\.int8\)', code)
    assert len(int8_buffers) >= 7, code
    # Sizes are followed through the quantized products (int8 values, their scales) as
    # through float ones: one rotary table and one mask for every layer, made once.
    assert code.count('torch.einsum("ab,c->abc"') == 1 and "inv_freq_2" not in code, code
    if name.endswith("int8"):
        assert ".to(torch.int32)" in code, code
        # Each layer's input quantized (nine TF ops: scaled by its largest magnitude,
        # rounded, clipped, cast) is one call of one helper.
        assert code.count("def quantize_int8(") == 1 and "= quantize_int8(h, 2)" in code, code
        assert "torch.round(" not in code.split("def quantize_int8(")[1].split("\nclass ", 1)[1], code
        # A frozen graph names neither the int8 kernels nor their float scales: they are
        # named for what they are to their layer, as Keras names them (`kernel`,
        # `kernel_scale`), not `self_attention_query_const` and `self_attention_query`.
        assert '"self_attention_query_kernel", torch.empty((32, 2, 16), dtype=torch.int8)' in code, code
        assert "self.self_attention_query_scale = nn.Parameter(" in code, code
        assert "self.token_embedding_scale = nn.Parameter(" in code and "_const" not in code, code
    else:
        assert "torch.bitwise_right_shift(" in code and "torch.bitwise_and(" in code, code
        # The packed int4 kernel (shifted and masked) and its zero point (subtracted) are
        # named so, not `attention_query_const` and `attention_query_const_2`.
        assert "torch.bitwise_right_shift(self.attention_query_kernel, 4)" in code, code
        assert '"attention_query_zero", torch.empty((32, 32), dtype=torch.int8)' in code, code
    tokens = []
    for suffix in ("", "_b"):
        (got,), (want,) = run_generated(out, GENERATED_DIR / f"{name}{suffix}.npz")
        scale = np.abs(want).max()
        assert got.shape == want.shape and got.dtype == want.dtype
        tokens += list(np.abs(got - want).max(axis=-1).reshape(-1) / scale)
    assert max(tokens) <= 2e-2, max(tokens)
    assert np.mean(np.array(tokens) <= 1e-4) >= 0.9, sorted(tokens)[-5:]


def test_one_unknown_op_in_a_real_model_is_one_stub(tmp_path):
    """MobileNetV2 with one Relu6 renamed to an op nothing translates: exactly one stub (what
    follows is translated, its rank taken from the stub's input, as its docstring says); filled
    in, the model matches TensorFlow's original for two batch sizes."""
    out = tmp_path / "out"
    proc = run_cli("convert", source("cascade_mobilenet"), "-o", out)
    assert "1 op types stubbed" in proc.stdout, proc.stdout
    stubs = (out / "custom_ops.py").read_text()
    assert "Assumed: the result has the rank of its first tensor input" in stubs
    filled = stubs.replace("    raise NotImplementedError(", "    return input_0.clamp(0.0, 6.0)\n    raise NotImplementedError(", 1)
    (out / "custom_ops.py").write_text(filled)
    for suffix in ("", "_b"):
        assert_parity(out, GENERATED_DIR / f"cascade_mobilenet{suffix}.npz")


def test_projections_are_linear_layers_whatever_the_kernel_layout(tmp_path):
    """Gemma's query, key and value kernels are [heads, hidden, dim] (heads first, not Keras'
    usual [hidden, heads, dim]): still `nn.Linear` layers, trainable, no einsum with a buffer
    (parity is the decoder test above)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_gemma"), "-o", out)
    code = (out / "model.py").read_text()
    for name in ("query", "key", "value"):
        assert f"self.attention_{name} = nn.Linear(32, " in code, code
    assert '"abc,dce->abde"' not in code, code


def test_a_mixture_of_experts_is_a_class_of_its_own(tmp_path):
    """Qwen-MoE's sparse mixture of experts (router, top-k experts, shared expert) is a class
    nested in the transformer layer's, as Hugging Face nests it, not twenty statements among
    the attention's with its scope on every layer's name (parity: the decoder test)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_qwen_moe"), "-o", out)
    code = (out / "model.py").read_text()
    assert "class QwenSparseMoeBlock(nn.Module):" in code, code
    assert "self.qwen_sparse_moe_block = QwenSparseMoeBlock()" in code, code
    assert "x = self.qwen_sparse_moe_block(x)" in code, code
    assert "self.shared_expert_gate_dense = nn.Linear(32, 1, bias=False)" in code, code
    assert "self.qwen_sparse_moe_block_" not in code, code
    assert code.index("class QwenSparseMoeBlock") < code.index("class TransformerLayer"), code
    assert "def forward(self, h: torch.Tensor) -> torch.Tensor:" in code, code
    # The router's choice is named as TF names the outputs of its unnamed `top_k`; Keras
    # casts the int32 indices TF gives to int64, which torch's already are.
    assert "values, indices = top_k(" in code, code
    assert "indices.to(" not in code and "indices.unsqueeze(-1) == torch.arange(" in code, code
    # The weights sit under the nested instance, in the layers' list.
    from safetensors.numpy import load_file

    keys = load_file(str(out / "model.safetensors"))
    assert "transformer_layers.1.qwen_sparse_moe_block.experts_gate_up_proj" in keys, sorted(keys)
    assert "transformer_layers.0.qwen_sparse_moe_block.sparse_feedforward_gate_dense.weight" in keys


def test_llama_norms_are_rms_norm_layers(tmp_path):
    """keras-hub Llama's `x * rsqrt(mean(x ** 2) + eps) * scale` is `nn.RMSNorm`, with no
    arithmetic left over (parity for it is the decoder test above)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_llama"), "-o", out)
    code = (out / "model.py").read_text()
    assert "nn.RMSNorm(32, eps=1e-6)" in code, code
    assert "rsqrt" not in code and "torch.pow" not in code, code


def test_a_mask_every_layer_reads_is_computed_before_the_layers(tmp_path):
    """ESM-2's padding mask (`token_ids != 0`) is first needed inside the first layer, where
    TF's order puts it; it moves above the layers, so the first layer is an instance of the
    layer class like the others (parity is the decoder test above)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_esm2"), "-o", out)
    code = (out / "model.py").read_text()
    assert "nn.ModuleList([TransformerLayer() for _ in range(2)])" in code, code
    top = code.split("class KerasHubEsm2")[1]
    assert "token_ids != 0" in top and "transformer_layer_0" not in top, code
    # ESM cuts its cos and sin tables to the sequence (`cos[None, :, None][:, :n]`): the cut
    # moves onto the angles, the rotations are `apply_rotary`, and the angles are computed
    # once, before the layers.
    layer = code.split("class TransformerLayer")[1].split("\nclass ")[0]
    assert layer.count("= apply_rotary(") == 2 and "torch.cos" not in layer, layer
    assert "angles: torch.Tensor" in layer and "angles = " in top, code


def test_layers_with_a_side_computation_as_deep_as_the_main_stream_are_one_class(tmp_path):
    """Falcon's ALiBi positions are built in every layer from the padding mask, as is its
    causal mask: both are computed once, before the layers, which read them; the slopes stay
    in each layer (weights, as far as a frozen graph tells). Both layers are instances of one
    class (parity is the decoder test)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_falcon"), "-o", out)
    code = (out / "model.py").read_text()
    assert "nn.ModuleList([TransformerLayer() for _ in range(2)])" in code, code
    layer = code.split("class TransformerLayer")[1].split("\nclass ")[0]
    top = code.split("class KerasHubFalcon")[1]
    assert "padding_mask.cumsum(1)" in top and "cumsum" not in layer, code
    assert "tril" in top and "tril" not in layer, code
    # The bias is added before the scores are scaled: it is scaled with them, into SDPA's mask.
    assert "F.scaled_dot_product_attention(q, k, v, attn_mask=bias)" in layer, code
    assert "F.softmax" not in layer, code
    # The slopes, 2^(-8/n) to the powers 1..n, are named so, not `const`.
    assert 'self.register_buffer("alibi_slopes", ' in layer and "const" not in code, code


def test_rotary_pairs_of_neighbours_are_one_helper(tmp_path):
    """RoFormer turns pairs of neighbouring features (`[x0, x1] -> [-x1, x0]`), not the two
    halves: the query's and key's turns are one `rotate_every_two` helper call each, the
    slices and stack it is made of gone (parity is the decoder test)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_roformer_v2"), "-o", out)
    code = (out / "model.py").read_text()
    layer = code.split("class TransformerLayer")[1].split("\nclass ")[0]
    assert layer.count("= rotate_every_two(") == 2, code
    assert "::2]" not in layer and "torch.stack" not in layer, code
    assert "def rotate_every_two(x):" in code, code
    # Its tables (each sin and cos repeated for the pair) are named for what they are.
    assert "sin: torch.Tensor" in layer and "cos: torch.Tensor" in layer, code


def test_position_embeddings_read_whole_are_the_table(tmp_path):
    """ViT's position embedding gathers every row of its table at a stored `arange`: that is
    the table itself, `self.position_embedding.weight[None]`, with no index buffer in the
    weights (parity is the decoder test)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_vit"), "-o", out)
    code = (out / "model.py").read_text()
    assert re.search(r"= self\.\w*position_embedding\.weight\[None\]", code), code
    assert not re.search(r"position_embedding\(self\.\w*_const", code), code
    assert "torch.int32)" not in code.split("def forward")[0], code


@pytest.mark.parametrize("name", ["keras_hub_vit", "keras_hub_dinov3", "dyn_class_token"])
def test_learned_tokens_are_named_for_what_they_are(name, tmp_path):
    """A frozen graph names a ViT's class token only after the layer holding it
    (`patching_and_embedding`, DINOv3's `embeddings` and `embeddings_2`): a `[1, 1, d]`
    weight repeated over the batch and set first along the sequence is the `class_token`,
    DINOv3's `[1, 4, d]` after it the `register_tokens`, as timm and Hugging Face name them
    (parity: the decoder and dynamic-shape tests)."""
    out = tmp_path / "out"
    run_cli("convert", source(name), "-o", out)
    code = (out / "model.py").read_text()
    assert re.search(r"self\.\w*class_token = nn\.Parameter|register_buffer\(\s*\"\w*class_token\"", code), code
    assert re.search(r"= self\.\w*class_token\.repeat\(", code), code
    if name == "keras_hub_vit":
        layer = code.split("class PatchingAndEmbedding")[1].split("\nclass ")[0]
        assert "self.class_token = nn.Parameter(" in layer, layer
    if name == "keras_hub_dinov3":
        assert re.search(r"self\.\w*register_tokens = nn\.Parameter\(", code), code
        assert "self.embeddings_2" not in code, code


def test_relative_positions_added_in_another_shape_are_the_attention_mask(tmp_path):
    """ViTDet adds its relative positions to the scores seen as `[B, h, w, h, w]` and
    reshapes them back: the sum of the two terms, reshaped, is SDPA's float mask, and no
    softmax is left in any layer; the positions' coordinates are aranges (parity is the
    decoder test)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_vitdet"), "-o", out)
    code = (out / "model.py").read_text()
    assert code.count("F.scaled_dot_product_attention(") == 2, code
    assert code.count("attn_mask=mask") == 2, code
    assert "softmax" not in code, code
    assert re.search(r"mask = \(\w+ \+ \w+\)\.reshape\(-1, \d+, \d+\)", code), code
    assert "= F.scaled_dot_product_attention(q, k, v, attn_mask=mask)" in code, code
    # The query and key coordinates TF folded into constants are computed, not stored.
    layers = code.split("\nclass KerasHubVitdet(")[0]
    assert "register_buffer" not in layers, layers
    assert layers.count("= torch.arange(8, dtype=torch.float32, device=inputs.device)") == 2


def test_a_whole_turn_of_pairs_is_one_helper(tmp_path):
    """Flux turns each pair of neighbouring features by its own angle, written out in full
    (two columns, four products, a difference and a sum, stacked and merged back): one
    `rotate_pairs(x, cos, sin)` helper for the queries and one for the keys of each block,
    with the tables named for what they are (parity is the decoder test)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_flux"), "-o", out)
    code = (out / "model.py").read_text()
    assert code.count("def rotate_pairs(") == 1, code
    assert code.count("= rotate_pairs(x, cos, sin)") == 4, code
    assert "torch.stack" not in code.split("def rotate_pairs(")[1].split("\nclass ")[1], code
    # Its tiny heads' two or three frequencies are still the embedding's `inv_freq`.
    assert "self.positional_embedding_inv_freq_3" in code and "_const" not in code, code


def test_layers_of_two_streams_are_block_classes(tmp_path):
    """Stable Diffusion 3's joint blocks carry an image and a text stream that meet in each
    block's attention: the blocks are one class returning both streams, stacked in one loop
    that carries both; the last (no text stream after its attention) is another class, and
    none is written out inline (parity is the decoder test)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_mmdit"), "-o", out)
    code = (out / "model.py").read_text()
    model = code.split("\nclass KerasHubMmdit(")[1]
    assert "self.joint_blocks = nn.ModuleList([JointBlock() for _ in range(2)])" in model, code
    assert re.search(r"for block in self\.joint_blocks:\n +(\w+), (\w+) = block\(", model), code
    # Named for where it runs, not numbered (`JointBlock2` beside `joint_block_2`).
    assert "self.joint_block_2 = LastJointBlock()" in model, code
    assert "self.joint_block_0" not in model, code
    assert "-> tuple[torch.Tensor, torch.Tensor]:" in code.split("\nclass LastJointBlock(")[0], code
    # Each stream's block scope is entered before the attention and again after it, which
    # TF numbers apart (`context_block_3_attention_proj`): in the class it is one scope.
    block = code.split("\nclass JointBlock(")[1].split("\nclass ")[0]
    assert "self.context_block_attention_proj = nn.Linear(" in block, block
    assert "self.x_block_mlp_dense1 = nn.Linear(" in block, block
    assert not re.search(r"self\.(context|x)_block_\d", block), block
    # The streams' query, key and value parts, joined for the attention, say which they are.
    for stream in ("context_block", "x_block"):
        assert f"{stream}_query, {stream}_key, {stream}_value = torch.unbind(" in block, block
    assert "torch.cat([context_block_key, x_block_key], dim=1)" in block, block
    # The adaptive norms' chunks shift, scale and gate, as diffusers names them.
    assert "shift, scale, gate, shift_2, scale_2, gate_2 = torch.split(" in block, block
    # The model's own final norm numbers its chunks in `forward` alone, not after the blocks'.
    assert "shift, scale = torch.split(" in model, model


def test_a_block_amid_which_the_model_made_its_inputs_is_a_class(tmp_path):
    """Flux's first double-stream block is where the text projection (`txt_in`) and the
    rotary tables are first read, so the code makes them amid the block's own: they move
    before it, and the block is a class taking them, not 100 lines of `forward` (parity is
    the decoder test)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_flux"), "-o", out)
    code = (out / "model.py").read_text()
    model = code.split("\nclass KerasHubFlux(")[1]
    assert "self.double_stream_block = DoubleStreamBlock()" in model, code
    assert re.search(r"= self\.double_stream_block\(\n? *add, \w+, \w+, cos, sin\n? *\)", model), code
    assert "self.double_stream_block_" not in model, code


def test_values_a_block_computes_itself_are_not_named_after_it(tmp_path):
    """Flux's double-stream block computes its modulation (`1 + scale`) and splits its
    query, key and value outside any layer of its own, so TF names those values after the
    block: inside the block's class that says nothing. A value read once a little later is
    written where it is read; one read next, or given back beside `x`, is the running `y`
    (parity is the decoder test)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_flux"), "-o", out)
    code = (out / "model.py").read_text()
    block = code.split("\nclass DoubleStreamBlock(")[1].split("\nclass ")[0]
    assert not re.search(r"^ +[^=]*\bdouble_stream_block\w* *=", block, re.M), block
    assert re.search(r"y = \(1\.0 \+ \w+\) \* y\n", block), block
    assert block.rstrip().endswith("return y, x"), block


def test_values_named_after_a_sublayer_run_as_x(tmp_path):
    """DeBERTa's attention layer computes its scores and merges the heads outside any layer
    of its own, so TF names those values after it: `self_attention_layer`,
    `self_attention_layer_8`. The first of them is no more the attention than the eighth,
    and one read by the next statement alone, even three times, is the running `x` or `y`:
    the heads merge as `x = x.permute(0, 2, 1, 3).flatten(2)` (parity is the encoder
    test)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_deberta"), "-o", out)
    code = (out / "model.py").read_text()
    block = code.split("\nclass DisentangledAttentionEncoderLayer(")[1].split("\nclass ")[0]
    assert not re.search(r"^ +self_attention_layer\w* *=", block, re.M), block
    assert "x = x.permute(0, 2, 1, 3).flatten(2)\n" in block, block


def test_a_part_holding_blocks_is_a_class_called_once(tmp_path):
    """SigLIP's vision and text encoders each hold their embeddings, a stack of blocks, a
    final norm and a head: each is a class of its own, its layers named within it
    (`self.post_layer_norm`, state-dict key `vision_encoder.post_layer_norm.weight`),
    called once from the model, as Hugging Face writes CLIP's towers (parity is the decoder
    test). keras-hub names them after the family (`sig_lip_vision_encoder`, in the model
    `sig_lip_backbone`): inside SigLIP, they are its `vision_encoder` and `text_encoder`."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_siglip"), "-o", out)
    code = (out / "model.py").read_text()
    model = code.split("\nclass KerasHubSiglip(")[1]
    for tower in ("VisionEncoder", "TextEncoder"):
        tower_code = code.split(f"\nclass {tower}(nn.Module):")[1].split("\nclass ")[0]
        assert "self.blocks = nn.ModuleList(" in tower_code, code
        assert "for block in self.blocks:" in tower_code, code
        assert "self.post_layer_norm = nn.LayerNorm(" in tower_code, code
        assert "sig_lip" not in tower_code, code
    assert "self.vision_encoder = VisionEncoder()" in model, code
    assert "self.text_encoder = TextEncoder()" in model, code
    assert "for block in" not in model and "sig_lip" not in model, code
    # The vision head adds its attention's output back inside the tower, which gives back
    # one value, not a half-done sum and its other term.
    assert "x = self.vision_encoder(images_nchw, images)\n" in model, code
    keys = import_model(out).load_model().state_dict()
    assert "vision_encoder.post_layer_norm.weight" in keys, list(keys)
    assert "text_encoder.blocks.1.layer_norm1.weight" in keys, list(keys)


def test_trained_values_are_parameters(tmp_path):
    """HGNetV2's learnable affine blocks scale and shift each convolution's output by two
    trained scalars, variables in TF: they are `nn.Parameter`s a training loop updates, not
    numbers written into `forward`, and blocks that differ only in their values share a class
    (parity is the decoder test)."""
    import numpy as np
    import torch

    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_hgnetv2"), "-o", out)
    code = (out / "model.py").read_text()
    assert "self.agg_squeeze_lab_scale = nn.Parameter(torch.empty((), dtype=torch.float32))" in code, code
    assert not re.search(r"= -?\d+\.\d+(e-?\d+)? \* x\b", code), code
    # The second stage's two blocks are one class, the second adding its input back.
    assert "self.encoder_stage_1_block_0 = EncoderStageBlock(" in code, code
    assert re.search(r"self\.encoder_stage_1_block_1 = EncoderStageBlock\([^)]*residual=True\)", code), code
    model = import_model(out).load_model().train()
    ref = np.load(GENERATED_DIR / "keras_hub_hgnetv2.npz")
    outputs = model(torch.from_numpy(ref["input_0"]))
    sum(o.square().mean() for o in (outputs if isinstance(outputs, tuple) else (outputs,))).backward()
    scales = {n: p for n, p in model.named_parameters() if n.endswith("lab_scale")}
    assert len(scales) >= 10 and all(p.grad is not None for p in scales.values()), sorted(scales)


# Fixtures whose npz holds how many values the variables TF trains hold (`trainable_count`).
COUNTED = ["any_size_mobilenet", "cond_keras_layer", "dyn_dilated", "dyn_tcn", "keras_channels_first"]
COUNTED += ["keras_conv_mixer", "keras_diffusion_unet", "keras_flat_transformer", "keras_mel_spectrogram"]
COUNTED += ["keras_mixed_precision", "keras_mobilenet_v3_small", "keras_nasnet_mobile", "keras_nested_backbone"]
COUNTED += ["keras_prelu", "keras_switch_moe", "seq2seq_attention", "single_head_attention", "video_frames"]
COUNTED += [n for n in DECODERS if n.startswith("keras_hub_")] + ["keras_hub_llama_bf16", "keras_hub_gemma_bf16"]
# A SavedModel says which variables are trained (see the test below).
COUNTED += ["keras_hub_gemma4_saved"]
# Trained values written as numbers, or untrained ones held as parameters: known, not done.
NOT_YET_COUNTED = {
    "keras_hub_gemma4": "a frozen graph cannot tell a weight Keras does not train from one it does",
}
COUNTED += [n for n in NOT_YET_COUNTED if n not in COUNTED]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=NOT_YET_COUNTED[n]))
        if n in NOT_YET_COUNTED
        else n
        for n in sorted(COUNTED)
    ],
)
def test_every_trained_value_is_a_parameter_once(name, tmp_path):
    """The module holds as many trainable values as the variables TF trains (counted by the
    fixture script from the TF function's `trainable_variables`): a trained bias of zeros or
    scale of ones is no neutral constant to drop (a fresh Keras MultiHeadAttention's biases,
    a ConvLSTM's gate biases inside its loop), a bias is no buffer, a norm without a shift
    has no bias, and one weight two ops read (DeBERTa's query projection, of the tokens and of
    the relative positions) is one layer. nn.LSTM's second bias, which TF has not, is left
    out of the count."""
    import numpy as np
    import torch

    out = tmp_path / "out"
    run_cli("convert", source(name), "-o", out)
    model = import_model(out).load_model()
    lstms = [m for m in model.modules() if isinstance(m, torch.nn.LSTM)]
    second = sum(p.numel() for m in lstms for n, p in m.named_parameters() if n.startswith("bias_hh"))
    count = sum(p.numel() for p in model.parameters()) - second
    assert count == int(np.load(GENERATED_DIR / f"{name}.npz")["trainable_count"])


def test_a_weight_keras_does_not_train_is_a_buffer(tmp_path):
    """A SavedModel keeps whether each variable is trained: Gemma 4's layer scalar, a weight
    Keras keeps but does not train (`trainable=False`), is a buffer the state dict holds, as
    Hugging Face's `register_buffer` keeps it, not an `nn.Parameter` an optimizer moves (the
    count above is the model's; a frozen graph, whose variables are all constants alike,
    cannot tell)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_gemma4_saved"), "-o", out, "--strict")
    code = (out / "model.py").read_text()
    assert 'self.register_buffer("layer_scalar", torch.empty((), dtype=torch.float32))' in code, code
    assert "x * self.layer_scalar" in code, code
    model = import_model(out).load_model()
    assert "layer_scalar" not in dict(model.named_parameters())
    scalars = [k for k in model.state_dict() if k.endswith("layer_scalar")]
    assert len(scalars) == 2, scalars
    assert float(model.state_dict()[scalars[0]]) != 1.0  # randomised, then loaded
    for suffix in ("", "_b"):
        assert_parity(out, GENERATED_DIR / f"keras_hub_gemma4_saved{suffix}.npz")


def test_blocks_inside_blocks_are_classes_they_hold(tmp_path):
    """HGNetV2's blocks each run three light blocks (a 1x1 conv, a depthwise conv, the
    affine): the light block is a class the block class holds three of, as Hugging Face's
    `HGNetV2BasicLayer` holds its layers, not twenty-one layers spelled out under
    `light_block_0_conv1_conv`; weights load strict under both instances, outputs match TF."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_hgnetv2"), "-o", out)
    code = (out / "model.py").read_text()
    block = code.split("class EncoderStageBlock(")[1].split("\nclass ")[0]
    for k in range(3):
        assert re.search(rf"self\.light_block_{k} = LightBlock\(", block), block
    assert "light_block_0_conv1" not in block, block
    assert "class LightBlock(nn.Module):" in code, code
    model = import_model(out).load_model()
    keys = set(model.state_dict())
    assert "encoder_stage_1_block_1.light_block_2.conv1_conv.weight" in keys, sorted(keys)
    assert_parity(out, GENERATED_DIR / "keras_hub_hgnetv2.npz")


def test_alibi_from_the_scores_size_is_fused_attention(tmp_path):
    """BLOOM builds its ALiBi positions from the attention scores' own size: the size is read
    from `k`, so nothing computes the scores but SDPA (parity is the decoder test)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_bloom"), "-o", out)
    code = (out / "model.py").read_text()
    layer = code.split("class TransformerLayer")[1].split("\nclass ")[0]
    assert "F.scaled_dot_product_attention(q, k, v, attn_mask=bias)" in layer, code
    assert "k.shape[2]" in layer and "F.softmax" not in layer and " @ " not in layer, code
    # the boolean mask under the bias is named for what it is, not for Keras' softmax scope
    assert "bias = torch.where(mask, " in layer, code
    assert "self.self_attention_alibi_slopes * " in layer and "const" not in code, code


def test_blocks_hold_the_layers_keras_named_after_their_kind(tmp_path):
    """MobileNetV3's `expanded_conv_N` blocks hold activations and products Keras names
    `activation_190`, `multiply_12`: they belong to the block between whose layers they sit,
    so the repeated blocks are classes (parity is the test above), and the hard activations are
    torch's."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_mobilenet_v3_small"), "-o", out)
    code = (out / "model.py").read_text()
    assert "class ExpandedConv(nn.Module):" in code, code
    assert "F.hardswish(" in code and "F.hardsigmoid(" in code and "F.relu6(" not in code, code
    top = code.split("class KerasMobilenetV3Small")[1]
    assert top.count("self.expanded_conv_") < 80, top
    assert "activation_" not in code.split("class KerasMobilenetV3Small")[0], code
    # One block class, as torchvision's InvertedResidual: the activation an argument (the
    # first blocks ReLU, the later hard swish) and squeeze-and-excitation a stage some skip.
    assert code.count("\nclass ") == 2, code
    assert "        x = self.activation(x)\n" in code, code
    # passed by keyword, as torchvision's `activation_layer=`
    assert "activation=F.relu,\n" in code and "activation=F.hardswish, padding=2, residual=True\n" in code
    assert "        activation,\n        stride=1," in code, code
    assert "use_squeeze_excite=False," in code, code
    # The strided ReLU block without squeeze-and-excitation too (three parts it lacks or adds).
    assert "self.expanded_conv_1 = ExpandedConv(" in code, code
    # Squeeze-and-excitation scales the running value, its own steps beside it (no copy of
    # the activation before the switch, as torchvision's SqueezeExcitation reads).
    squeeze = (
        "        x = self.activation(x)\n"
        "        if self.use_squeeze_excite:\n"
        "            y = x.mean((2, 3), keepdim=True)\n"
    )
    assert squeeze in code and "            x = x * y\n" in code, code


def test_cells_numbered_at_the_end_of_their_names_are_classes(tmp_path):
    """Keras NASNet numbers each cell at the end of its layers' names (`normal_conv_1_5`,
    `separable_conv_1_normal_left1_5`, `reduction_conv_1_reduce_4`), with no scope: the
    cells are still one class per cell type, named after what their layers are named after,
    with the layers' names inside without the number (parity is the test above)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_nasnet_mobile"), "-o", out)
    code = (out / "model.py").read_text()
    assert "class NormalCell(nn.Module):" in code and "class ReductionCellC(nn.Module):" in code, code
    assert code.count("= NormalCell(") + code.count("= NormalCellWithProjection(") >= 11, code
    # The first cell after the stem as well: TF numbered the call of its Keras-named
    # `cropping2d_1` `_2` (`cropping2d_1_2`, as `cropping2d_1` is the call of `cropping2d`);
    # under its Keras name it is the other such cells' crop.
    assert "self.normal_cell_0 = NormalCell(" in code, code
    assert code.count("= ReductionCellC(") == 2, code
    # Each of the stem's two reduction cells, which differ from those two and from each
    # other, is a class too (lettered in the order they run, as torchvision's InceptionA
    # to E): `forward` is the stem's conv and a call per cell.
    assert "self.reduction_cell_stem_1 = ReductionCellA()" in code, code
    assert "self.reduction_cell_stem_2 = ReductionCellB()" in code, code
    top = code.rsplit("    def forward(", 1)[1].split("        return x\n")[0]
    top = top.split("Returns:")[1]
    assert top.count("\n") < 32, top
    # The cell's one 1x1 conv: `normal_conv_1_5` without the cell's number, nor the `1`
    # that tells no other conv of the cell apart, nor the cell's kind, which the class says.
    normal = code.split("class NormalCell(nn.Module):")[1].split("\nclass ")[0]
    reduction = code.split("class ReductionCellC(nn.Module):")[1].split("\nclass ")[0]
    assert "self.conv = nn.Conv2d(" in normal and "self.conv = nn.Conv2d(" in reduction, code
    assert "normal_" not in normal and "reduction_" not in reduction, code
    assert "self.reduction_cell_reduce_4 = ReductionCellC(" in code, code
    # Keras' `_separable_conv_block` (ReLU, separable conv, batch norm), which every branch
    # of every cell repeats, is a class too, its instances named after their layers.
    assert "class SeparableConv(nn.Module):" in code, code
    assert "self.separable_conv_1_left1 = SeparableConv(" in normal, normal
    sep = code.split("class SeparableConv(nn.Module):")[1].split("\nclass ")[0]
    assert "self.depthwise = nn.Conv2d(" in sep and "self.bn = nn.BatchNorm2d(" in sep, sep
    # The separable convolutions that downsample pad unevenly first (TF's SAME padding of an
    # even size, spelled out as Keras' `ZeroPadding2D`): the same class, told its padding.
    assert "5, stride=2, pad=(1, 2, 1, 2)" in reduction, reduction
    assert "        if self.pad is not None:\n            x = F.pad(x, self.pad)\n" in sep, sep
    assert "_depthwise = nn.Conv2d(" not in code, code
    assert code.count("\n") < 530, code.count("\n")
    # Inside the cells too, the right branches run as `y` beside the left one's `x`.
    assert "        y = self.separable_conv_2_right1(y)\n" in normal, normal


def test_rotations_of_pairs_viewed_as_pairs_are_the_helper(tmp_path):
    """Moonshine turns the neighbouring pairs of part of each head through a view of the
    features as pairs (`x.reshape(.., d / 2, 2)`, its columns stacked turned): the
    `rotate_every_two` helper, as RoFormer's strided slices are, and the rotation
    `apply_rotary_every_two(x, angles)` (parity is the test above)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_moonshine"), "-o", out)
    code = (out / "model.py").read_text()
    assert "def rotate_every_two(" in code, code
    # The rotations of the query and the key, one call each in the encoder's and the
    # decoder's layer classes.
    assert "def apply_rotary_every_two(x, angles):" in code, code
    assert code.count("= apply_rotary_every_two(") == 4, code
    layer = code.split("class EncoderBlock(nn.Module):")[1].split("\nclass ")[0]
    assert "torch.stack(" not in layer and "// 2" not in layer, layer
    # The angles are the positions times the inverse frequencies (`positions[:, None] @
    # inv_freq[None, :]` in Keras): a product with a table, not an nn.Linear(1, 4) to train.
    assert "nn.Linear(1," not in code, code
    assert re.search(r"x \* self\.\w*inv_freq\b", code), code


def test_hugging_face_rotary_embeddings_are_the_helpers(tmp_path):
    """SmolLM3 (ported from Hugging Face) slices the halves for `rotate_half` and unsqueezes
    cos and sin before the rotation: still `apply_rotary(q, angles)`, the angles unsqueezed
    as the tables were, and the layers one class (parity is the decoder test above)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_smollm3"), "-o", out)
    code = (out / "model.py").read_text()
    assert "[TransformerLayerWithRotary() for _ in range(2)]" in code, code
    assert code.count("apply_rotary(") == 3, code
    layer = code.split("class TransformerLayerWithRotary")[1].split("\nclass ")[0]
    assert "torch.cos" not in layer and "torch.sin" not in layer and ":, 8:]" not in layer, layer


def test_a_layer_that_occurs_once_is_a_class_of_its_own(tmp_path):
    """SmolLM3's last layer has no rotary embedding, so no other layer repeats it: it is a
    class all the same, as a person would write it, and its layers are named inside it
    (`self.self_attn_q_proj`), not with the whole scope under the model
    (`self.transformer_layer_2_self_attn_q_proj`). The two classes' names say which has the
    rotary embedding (`TransformerLayerWithRotary`), not `TransformerLayer2`."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_smollm3"), "-o", out)
    code = (out / "model.py").read_text()
    assert "self.transformer_layer_2 = TransformerLayer()" in code, code
    assert "TransformerLayer2" not in code, code
    nope = code.split("class TransformerLayer(nn.Module):")[1].split("\nclass ")[0]
    assert "self.self_attn_q_proj = nn.Linear(" in nope, nope
    assert "apply_rotary" not in nope and "F.scaled_dot_product_attention(" in nope, nope
    names = set(re.findall(r"\bself\.(\w+)", code))
    assert max(map(len, names)) <= 30, sorted(names, key=len)[-5:]


def test_a_first_layer_whose_side_inputs_are_deep_is_one_of_the_stack(tmp_path):
    """DeBERTa's layers read the relative embeddings (weights through a layer norm, as deep
    as the main stream in the first layer only) and four other values: the first layer is
    written in the others' order and all are one class (parity is the decoder test above)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_deberta"), "-o", out)
    code = (out / "model.py").read_text()
    flat = "".join(code.split())
    assert "nn.ModuleList([DisentangledAttentionEncoderLayer()for_inrange(2)])" in flat, code
    assert code.count("F.scaled_dot_product_attention(") == 1, code


def test_channels_first_layers_read_their_input_as_it_is(tmp_path):
    """Keras' channels_first layers are TF's NCHW ops: PyTorch's layers take NCHW, so the
    code has no permute at all, and batch normalization on axis 1 is `nn.BatchNorm2d`
    (parity is the dynamic test above)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_channels_first"), "-o", out)
    code = (out / "model.py").read_text()
    forward = code.split("def forward")[1].split("\n_DTYPES")[0]
    assert "permute" not in forward, code
    assert "nn.BatchNorm2d(8, eps=0.001)" in code and "groups=8" in code, code
    # The docstrings say the inputs are channels first, as TF's are.
    assert "(channels first" in code and "(channels last" not in code, code


def test_dilated_convolutions_on_any_length_are_one_layer(tmp_path):
    """TF pads a dilated Conv1D's input to a multiple of the rate and crops as much again,
    both computed from the length: each is one `nn.Conv1d(dilation=...)`, with no batch
    reshuffling left (parity is the dynamic test above)."""
    out = tmp_path / "out"
    run_cli("convert", source("dyn_tcn"), "-o", out)
    code = (out / "model.py").read_text()
    assert "dilation=2" in code and "dilation=4" in code, code
    assert "remainder" not in code and "tolist" not in code, code



def test_dilated_same_convolutions_on_any_size_are_one_layer(tmp_path):
    """A SAME dilated conv on an image or sequence of any size: TF pads by the base padding
    plus a remainder computed from the size, and crops the remainder. Pads minus crops is
    the base padding whatever the size, so each is one padded `nn.Conv2d`/`nn.Conv1d`; the
    separable 1-D convs, dilated or strided, are two `nn.Conv1d` (parity: the dynamic test
    above)."""
    out = tmp_path / "out"
    run_cli("convert", source("dyn_dilated"), "-o", out)
    code = (out / "model.py").read_text()
    forward = code.split("def forward")[1].split("\n_DTYPES")[0]
    flat = re.sub(r"\(\s+", "(", re.sub(r"\s+", " ", code))  # calls ruff wrapped, unwrapped
    assert "nn.Conv2d(3, 3, 3, padding=2, dilation=2, groups=3" in flat, code
    assert "nn.Conv2d(8, 8, 3, padding=3, dilation=3, groups=8)" in flat, code
    assert "nn.Conv2d(8, 4, 3, padding=2, dilation=2)" in flat, code
    assert "nn.Conv1d(8, 8, 3, padding=4, dilation=4, groups=8" in flat, code
    assert "nn.Conv1d(8, 8, 3, stride=2, groups=8" in flat, code
    assert "nn.Conv2d" not in flat.split("nn.Conv1d(3, 8")[1], code
    for spelled_out in ("remainder", "tolist", "reshape", "F.pad", "unsqueeze"):
        assert spelled_out not in forward, code


def test_a_transformer_written_in_raw_tf_reads_as_layers(tmp_path):
    """OpenAI's GPT-2 written in raw TF, no Keras and no scopes: its hand-written layer norms
    `(x - u) * rsqrt(s + eps) * g + b` are `nn.LayerNorm`s, named for what they are, not
    after TF's `add_1`; its attention is one SDPA call and its GELU the tanh one. Its
    `conv1d` flattens to a matrix, multiplies and restores `[B, T, F]`: the projection is
    `self.fc(h)` on the sequence, the heads `unflatten(2, (4, 4))` and `flatten(2)`, not
    reshapes spelling out `x.shape[0], x.shape[1]`; the skip connections are `residual`
    (parity: the dynamic test above)."""
    out = tmp_path / "out"
    run_cli("convert", source("tf_gpt2_block"), "-o", out)
    code = (out / "model.py").read_text()
    forward = code.split("def forward")[1].split("\n_DTYPES")[0]
    assert "reshape(-1" not in forward and ".shape[0]" not in forward, code
    assert forward.count(".unflatten(2, (4, 4))") == 6 and forward.count(".flatten(2)") == 2, code
    assert "h = self.fc(h)\n" in forward and forward.count("residual = residual + h") == 2, code
    assert code.count("nn.LayerNorm(16)") == 5, code
    assert "self.layer_norm = nn.LayerNorm(16)" in code, code
    assert code.count("F.scaled_dot_product_attention(") == 2, code
    assert code.count('F.gelu(h, approximate="tanh")') == 2, code
    assert "rsqrt" not in code and "self.add_" not in code, code


def test_a_mel_filter_bank_built_from_constants_is_a_constant(tmp_path):
    """`tf.signal.linear_to_mel_weight_matrix` and the STFT's Hann window are computed in
    the graph from constants (a linspace sliced, gathered and padded; a cosine): each is one
    buffer the spectrogram multiplies by, not forty lines `forward` runs on every call
    (parity: the dynamic test above)."""
    out = tmp_path / "out"
    run_cli("convert", source("audio_features"), "-o", out)
    code = (out / "model.py").read_text()
    forward = code.split("def forward")[1].split("\n_DTYPES")[0]
    for computed in ("hertz_to_mel", "linspace", "torch.cos", "torch.minimum", "nn.Embedding"):
        assert computed not in code, code
    assert "@ self.linear_to_mel_weight_matrix" in forward, code


def test_a_signal_of_any_length_is_framed_by_unfold(tmp_path):
    """`tf.signal.stft` frames a waveform of any length by cutting it into subframes and
    gathering them by an index table built from the length: that is `wave.unfold(-1, 64,
    32)`, not twenty lines of size arithmetic and `.tolist()` (parity: the dynamic test)."""
    out = tmp_path / "out"
    run_cli("convert", source("audio_features"), "-o", out)
    code = (out / "model.py").read_text()
    forward = code.split("def forward")[1].split("\n_DTYPES")[0]
    assert "x = wave.unfold(-1, 64, 32)\n" in forward, code
    # The window is named for the function that computed it (`tf.signal.hann_window`).
    assert "x = x * self.hann_window\n" in forward, code
    for spelled_out in (".tolist()", "torch.arange", "floor_divide", ".item()"):
        assert spelled_out not in forward, code

def test_a_folded_window_is_named_by_its_values(tmp_path):
    """Keras' `MelSpectrogram` computes its Hann window in the graph and pads it to the
    FFT's length; folded, it is one constant named after the `Pad`. Its values say what it
    is: `self.hann_window`, not `self.mel_spectrogram_const` (parity above)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_mel_spectrogram"), "-o", out)
    code = (out / "model.py").read_text()
    assert "x = x * self.hann_window\n" in code, code


def test_an_angle_table_every_layer_reshapes_is_made_once(tmp_path):
    """DINOv3's layers each unsqueeze the one cos and sin table: the rotations read one
    `angles` value made before the layers, and the layers are one class (parity above)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_dinov3"), "-o", out)
    code = (out / "model.py").read_text()
    assert "nn.ModuleList([EncoderLayer() for _ in range(2)])" in code, code
    top = code.split("class KerasHubDinov3")[1]
    assert top.count("angles = ") == 1 and "layer(x, angles)" in top, code
    # The patches' centres, (i + 0.5) / n, are coordinates.
    assert "self.rope_embedding_coords.repeat(" in top and "const" not in code, code


@pytest.mark.parametrize("name", ["keras_hub_albert", "keras_hub_esm2", "keras_hub_dinov3"])
def test_einsum_attention_is_one_sdpa_call(name, tmp_path):
    """Keras' attention written as einsums (`BTNH,BSNH->BNTS`, then `BNTS,BSNH->BTNH`) is one
    `F.scaled_dot_product_attention` call, its output transposed back. ALBERT's and ESM's
    masks select a large negative score and nothing zeroes the probabilities after: a
    sequence of padding only averages every value in TF, as the float mask `where(mask, 0,
    min)` added to the scores does (parity on such a sequence: the decoder test)."""
    out = tmp_path / "out"
    run_cli("convert", source(name), "-o", out)
    code = (out / "model.py").read_text()
    assert "F.softmax" not in code and "torch.einsum" not in code, code
    assert "F.scaled_dot_product_attention(q, k, v" in code, code
    if name != "keras_hub_dinov3":
        assert "torch.where(mask, 0.0, -2.372671e38)" in code, code
        # The all-true `ones_like(scores)` Keras ands the mask with is gone.
        assert "torch.full(" not in code, code


def test_single_head_attention_is_one_sdpa_call(tmp_path):
    """Attention on `[B, T, E]` tensors is SDPA too: Keras' `Attention` layer, whose padding
    mask subtracts 1e9 from the scores it selects (`where(masked, 1e9 offset, 0)` added),
    and a hand-written non-local block over a feature map's positions; q, k and v named as
    such. Hugging Face's attention adds 1e-9 to the scores before the softmax, which is no
    mask (parity, a sequence of padding only included: the parametrized test above)."""
    out = tmp_path / "out"
    run_cli("convert", source("single_head_attention"), "-o", out)
    code = (out / "model.py").read_text()
    assert "F.softmax" not in code and " @ " not in code, code
    assert code.count("F.scaled_dot_product_attention(q") == 3, code
    assert "torch.where(mask, -1000000000.0, 0.0)" in code, code
    # Keras' learned scale stays the parameter it is, on q; SDPA's `scale` is a number.
    assert "q = x * self.attention\n" in code and "scale=0.7" not in code, code
    # Hugging Face's 1e-9 added to every score changes no probability: no such mask.
    assert "1e-09" not in code and "attn_mask=mask_3" in code, code


def test_attention_with_a_group_axis_is_grouped_query_attention(tmp_path):
    """Gemma splits its query heads into groups of the key/value heads and writes attention
    as 5-D einsums (`abcde,afce->acdbf`): one SDPA call with `enable_gqa=True` on the query
    before its split (parity, with left padding: the decoder test)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_gemma"), "-o", out)
    code = (out / "model.py").read_text()
    assert "F.softmax" not in code and "abcde" not in code, code
    # The padding mask every layer reads, only given an axis, keeps the input's name (in the
    # layer's signature too), not the op's (`expand_dims`); so does the causal mask.
    assert "padding_mask_2 = padding_mask.unsqueeze(1)" in code and "expand_dims" not in code, code
    assert "causal_mask = x.unsqueeze(0)" in code, code
    assert "causal_mask: torch.Tensor,\n        padding_mask: torch.Tensor," in code, code
    assert "F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)" in code, code
    # The mask's axis for the groups is never added (`[:, None, None]`, then squeezed).
    assert "x = minimum[:, None]\n        mask = x > 0" in code and ".squeeze(2)" not in code, code
    # Gemma interleaves the halves of each head of q and of k after the rotary embedding,
    # which leaves q·k as it was: not written out (`torch.stack`, a reshape back).
    assert "torch.stack" not in code and "q = apply_rotary(x, angles).permute(0, 2, 1, 3)" in code
    # The rotary angles are computed once, before the layers (not in each layer, from its own
    # input's length: the layers' lengths are one through their fully masked rows' `all`).
    assert code.count("inv_freq") == 2 and "for block in self.decoder_blocks:" in code, code
    assert "h = block(h, angles, causal_mask, padding_mask_2)" in code, code


def test_grouped_matmuls_are_grouped_query_attention(tmp_path):
    """Gemma 4 writes the same grouped attention as rank-5 matmuls of transposed operands:
    one SDPA call with `enable_gqa=True`; its `pow(..., -0.5)` norms (the value's without a
    scale) are `nn.RMSNorm` layers (parity: the decoder test)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_gemma4"), "-o", out)
    code = (out / "model.py").read_text()
    assert "F.softmax" not in code and "torch.pow" not in code, code
    assert code.count("F.scaled_dot_product_attention(") == 1 and "enable_gqa=True" in code, code
    assert "nn.RMSNorm(16, eps=1e-6, elementwise_affine=False)" in code, code
    assert code.count("nn.RMSNorm(") == 8, code


@pytest.mark.parametrize(
    "name", ["keras_hub_gpt2", "keras_hub_llama", "keras_hub_t5", "keras_hub_gemma4", "keras_hub_moonshine"]
)
def test_a_model_moved_to_another_device_runs_there(name, tmp_path):
    """What `forward` makes from sizes alone (rotary positions, causal masks, T5's relative
    positions, a band of a matrix) is made on the inputs' device, as Hugging Face writes
    `torch.arange(n, device=x.device)`, so a model moved with `.to(device)` runs there. No
    GPU here: the `meta` device, where a tensor made on the CPU meets the inputs and fails
    as it would on `cuda` (in a process of its own: meta attention loads triton, which
    aborts beside TensorFlow)."""
    out = tmp_path / "out"
    run_cli("convert", source(name), "-o", out)
    script = f"""
import sys, numpy as np, torch
sys.path.insert(0, {str(out)!r})
import model
m = model.load_model().to("meta")
data = np.load({str(GENERATED_DIR / f"{name}.npz")!r})
keys = sorted((k for k in data.files if k.startswith("input_")), key=lambda k: int(k.split("_")[1]))
with torch.no_grad():
    got = m(*[torch.from_numpy(data[k]).to("meta") for k in keys])
got = got if isinstance(got, (tuple, list)) else [got]
assert all(t.device.type == "meta" for t in got), [t.device for t in got]
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("name", ["keras_hub_gpt2", "keras_hub_llama"])
def test_decoder_attention_reads_as_pytorch(name, tmp_path):
    """Attention is one `F.scaled_dot_product_attention` call on tensors named q, k, v (Llama's
    repeated key/value heads as `enable_gqa=True`), and the layers are one `nn.ModuleList`
    run by a loop. Parity, with left padding that leaves the first queries no key to attend
    to, is the decoder test above."""
    out = tmp_path / "out"
    run_cli("convert", source(name), "-o", out)
    code = (out / "model.py").read_text()
    assert "F.softmax" not in code and "-1000000000.0" not in code, code
    call = "F.scaled_dot_product_attention(q, k, v, attn_mask=mask"
    assert code.count(call) == 1, code
    assert ("enable_gqa=True" in code) == (name == "keras_hub_llama"), code
    assert "nn.ModuleList([TransformerLayer() for _ in range(2)])" in code, code
    assert "for layer in self.transformer_layers:" in code, code
    # The stream the layers carry is `h` (the embeddings, whose sizes the mask reads
    # first), not the layers' outputs named after the embedding.
    assert "            h = layer(h, " in code, code
    # The causal mask as a person builds it, not from two aranges compared.
    assert re.search(r",dtype=torch.bool,device=\w+\.device\)\.tril\(\)", re.sub(r"\s+", "", code)), code
    assert not any(">=" in line and "range" in line for line in code.splitlines()), code
    # Keras' wrap of ids counted from the end, in one line before the token embedding.
    assert "torch.where(token_ids < 0, token_ids + 500, token_ids)" in code, code
    if name == "keras_hub_gpt2":
        # The learned position table is a trainable nn.Embedding cut to the sequence length.
        assert "self.position_embedding = nn.Embedding(32, 32)" in code, code
        assert "self.position_embedding.weight[: token_embedding.shape[1]]" in code, code
        assert "register_buffer" not in code.split("class KerasHubGpt2")[1], code
    # Short local names: scope prefixes only where they tell two values apart.
    tree = ast.parse(code)
    forwards = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "forward"]
    local = {n.id for f in forwards for n in ast.walk(f) if isinstance(n, ast.Name)}
    assert max(map(len, local)) <= 30, sorted(local, key=len)[-3:]
    if name == "keras_hub_llama":
        # SwiGLU as a person writes it: the gate's activation around its projection, times
        # the up projection.
        # The normalized input both projections read is `h`, the stream the skip
        # connections add to is `residual` (not the norm's 21-character name, nor `add`).
        assert "h = self.feedforward_layernorm(residual)" in code, code
        assert "x = F.silu(self.feedforward_gate_dense(h))" in code, code
        assert "x = x * self.feedforward_intermediate_dense(h)" in code, code
        assert "x = x + residual\n        return x" in code, code
        # Rotary embeddings: one helper pair, applied to the queries and to the keys.
        assert code.count("def rotate_half(") == 1 and code.count("def apply_rotary(") == 1
        assert code.count("= apply_rotary(") == 2 and "torch.cos" not in code.split("class ")[1], code
        # The frequencies stacked twice and flattened are what they are, a concatenation.
        # Named as Hugging Face's rotary embedding names them: `inv_freq` (not the scope's
        # `self_attention_llama_rotary_embedding_inv_freq`), `freqs` doubled into `angles`.
        assert "angles = torch.cat([freqs, freqs], dim=2)" in code and "torch.stack" not in code, code
        assert 'freqs = torch.einsum("ab,c->abc", x, self.rotary_embedding_inv_freq)' in code, code
        # Computed once, before the layers, which take them as inputs (Hugging Face's
        # `position_embeddings` and 4-D mask): each layer built its own angles for the queries
        # and again for the keys, and its own causal mask.
        layer = code.split("class TransformerLayer")[1].split("\nclass ")[0]
        top = code.split("class KerasHubLlama")[1]
        assert "angles: torch.Tensor, mask: torch.Tensor" in layer, layer
        assert "torch.arange" not in layer and "tril" not in layer, layer
        assert top.count("torch.einsum(") == 1 and top.count(".tril()") == 1, top
        assert "h = layer(h, angles, mask)" in top, top
        assert code.count("register_buffer(") == 1, code
        # The length they are built for is named as a person names it.
        assert "seq_len = h.shape[1]" in top, top
        # Keras' `self_attention/attention_output` says `attention` once.
        assert "self.self_attention_output = nn.Linear(" in layer, layer


def test_an_encoder_decoder_reads_as_pytorch(tmp_path):
    """T5: each stack's layers after the first (which computes the relative position bias the
    others read) are one class run by a loop, the decoder's taking its input, both masks and
    the encoder output; q, k, v and the masks are named afresh inside the classes; names in
    `forward` stay short although encoder and decoder share every scope name but one word."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_t5"), "-o", out)
    code = (out / "model.py").read_text()
    flat = re.sub(r"\s+", "", code)
    assert "nn.ModuleList([TransformerEncoderLayer()for_inrange(2)])" in flat, code
    assert "nn.ModuleList([TransformerDecoderLayer()for_inrange(2)])" in flat, code
    # The padding mask is `mask`; the relative position bias plus it, which each stack's
    # first layer gives the others, is `bias` (Hugging Face's `position_bias`), not `mul_2`.
    assert "x = layer(x, bias_2, encoder_output_layer_norm, mask)" in code, code
    # Each stack's first layer computes the position bias the others read: a class of its
    # own, called for both values (`x, bias = ...`), its layers named inside it, and named
    # after the part the others lack: the bias table. A frozen graph names that table after
    # the attention it is looked up in; as the attention's, not the attention itself
    # (`self.self_attention = nn.Embedding(...)` read as if it were).
    assert "self.transformer_encoder_layer_0 = TransformerEncoderLayerWithEmbedding()" in code, code
    assert "self.self_attention_embedding = nn.Embedding(32, 2)" in code, code
    assert "self.self_attention = " not in code, code
    # Classes are written in the order they run.
    classes = re.findall(r"^class (\w+)\(", code, re.M)
    assert classes[:2] == ["TransformerEncoderLayerWithEmbedding", "TransformerEncoderLayer"], classes
    assert "x, bias = self.transformer_encoder_layer_0(token_embedding, mask)" in code, code
    # It gives back the running value as the others do, beside the bias (not `add_2`).
    assert "        x = x + residual\n        return x, bias\n" in code, code
    attributes = set(re.findall(r"\bself\.(\w+)", code))
    assert not [a for a in attributes if a.startswith("transformer_encoder_layer_0_")], sorted(attributes)
    # The longest are Keras' own two-word names (`cross_attention_output_projector`).
    assert max(map(len, attributes)) <= 32, sorted(attributes, key=len)[-3:]
    decoder = code.split("class TransformerDecoderLayer(")[1].split("\nclass ")[0]
    assert "F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)" in decoder, decoder
    # Cross-attention's mask as it is given, not added to a position bias of zeros first.
    assert "F.scaled_dot_product_attention(q_2, k_2, v_2, attn_mask=mask, scale=1.0)" in decoder, decoder
    assert "torch.zeros" not in decoder, decoder
    # T5's norms scale by a trained weight (ones in a fresh model): a weight to train.
    assert "nn.RMSNorm(32, eps=1e-6)" in code and "elementwise_affine" not in code, code
    # The padding mask's two new axes, one subscript (`mask[:, None, None]`, not
    # `mask[:, None][:, None]`).
    assert "encoder_padding_mask[:, None, None]" in code and "][:, None" not in code, code
    # Keras counts its unnamed norms over the whole model (`t5_layer_norm_5`, `_7` in one
    # layer, `_6`, `_8` in the next): a class counts its own.
    encoder = code.split("class TransformerEncoderLayer(")[1].split("\nclass ")[0]
    norms = re.findall(r"self\.(t5_layer_norm\w*) = nn\.RMSNorm", encoder)
    assert norms == ["t5_layer_norm_1", "t5_layer_norm_2"], encoder
    # So does the first layer, where Keras and TF gave `t5_layer_norm`, `t5_layer_norm_1_2`:
    # the two classes' norms read alike.
    first = code.split("class TransformerEncoderLayerWithEmbedding")[1].split("\nclass ")[0]
    norms = re.findall(r"self\.(t5_layer_norm\w*) = nn\.RMSNorm", first)
    assert norms == ["t5_layer_norm_1", "t5_layer_norm_2"], first
    # T5's gated ReLU feed-forward: the activation around its projection, times the other.
    assert "x = F.relu(self.input_projector(h)) * self.gate_projector(h)" in decoder, decoder
    # Each skip connection adds back the stream the one before left: `residual`.
    assert "residual = x + residual\n" in decoder and "x = x + residual\n" in decoder, decoder
    tree = ast.parse(code)
    forwards = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "forward"]
    local = {n.id for f in forwards for n in ast.walk(f) if isinstance(n, ast.Name)}
    assert max(map(len, local)) <= 30, sorted(local, key=len)[-3:]


@pytest.mark.parametrize("name", ["keras_hub_flux", "keras_hub_hgnetv2", "keras_nasnet_mobile", "audio_features"])
def test_long_layer_names_make_short_locals(name, tmp_path):
    """A local named after a layer whose name is long (Flux's
    `rotary_positional_embedding_3_2`, NASNet's `separable_conv_2_bn_reduction_right2_stem_1`,
    tf.signal's `mfccs_from_log_mel_spectrograms`) keeps the last words that fit in 30
    characters, or runs as `x` or `y` where it is read once (parity is the test above);
    `self.` attributes, the state-dict keys, keep the layers' whole names."""
    out = tmp_path / "out"
    run_cli("convert", source(name), "-o", out)
    code = (out / "model.py").read_text()
    tree = ast.parse(code)
    forwards = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "forward"]
    local = {n.id for f in forwards for n in ast.walk(f) if isinstance(n, ast.Name)}
    assert max(map(len, local)) <= 30, sorted(local, key=len)[-3:]
    if name == "keras_nasnet_mobile":
        # Its stem's second cell, `separable_conv_1_reduction_right2_stem_2` and the others,
        # is a class of its own (see the cells' test).
        assert "self.separable_conv_1_right2(" in code, code


def numbered_read_once_by_the_next(body):
    """Assignments in `body` of a numbered name (`double_stream_block_17`) that only the next
    assignment reads, where `x` or `y` was free to hold the value instead."""

    def uses(stmt, name):
        names = [n for n in ast.walk(stmt) if isinstance(n, ast.Name) and n.id == name]
        return sum(isinstance(n.ctx, ast.Load) for n in names), len(names)

    def free(name, start):
        for stmt in body[start:]:
            loads, all_uses = uses(stmt, name)
            if loads:
                return False
            if all_uses:
                return True
        return True

    found = []
    for k, stmt in enumerate(body[:-1]):
        if not (isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name)):
            continue
        name = stmt.targets[0].id
        if not re.search(r"_\d+$", name) or not isinstance(body[k + 1], ast.Assign):
            continue
        loads = [uses(s, name)[0] for s in body]
        if sum(loads) == 1 and loads[k + 1] == 1 and (free("x", k + 1) or free("y", k + 1)):
            found.append(ast.unparse(stmt))
    return found


@pytest.mark.parametrize("name", ["keras_hub_flux", "keras_hub_mmdit", "audio_features", "keras_hub_t5"])
def test_values_a_layer_named_no_further_run_as_x_or_y(name, tmp_path):
    """Values computed inside a layer whose own code named none of them are numbered after
    the layer (Flux's `double_stream_block_17 = 1.0 + modulation_4`). Read once, by the next
    statement, they run as `x` or `y`, as a person writes `y = 1.0 + scale`,
    `y = y * h`; names a pass gave for a role (`mask_2`) stay. Parity is
    test_converts_once_and_matches_for_every_input_size."""
    out = tmp_path / "out"
    run_cli("convert", source(name), "-o", out)
    tree = ast.parse((out / "model.py").read_text())
    forwards = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "forward"]
    found = [s for f in forwards for s in numbered_read_once_by_the_next(f.body)]
    roles = ("mask", "q_", "k_", "v_", "bias", "cos", "sin", "ids", "seq_len", "batch_size", "dim")
    assert [s for s in found if not s.startswith(roles)] == []


def test_blocks_no_name_marks_are_found_by_structure(tmp_path):
    """keras.io's vision transformer names no block: its layers are `layer_normalization_3`,
    `multi_head_attention_1`, `dense_5`, one after the other. The three blocks are found by
    what they compute, one class run by a loop, its layers counted within it (parity is the
    test above)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_flat_transformer"), "-o", out)
    code = (out / "model.py").read_text()
    assert "self.blocks = nn.ModuleList([Block() for _ in range(3)])" in code, code
    assert "for block in self.blocks:\n            x = block(x)" in code, code
    block = code.split("class Block(nn.Module):")[1].split("\nclass ")[0]
    assert "self.dense_1 = nn.Linear(32, 64)" in block and "self.dense_2 = nn.Linear(64, 32)" in block, block
    assert "F.scaled_dot_product_attention(q, k, v)" in block, block


def test_a_block_found_by_structure_starts_where_it_adds_its_input_back(tmp_path):
    """ConvMixer's stretch of blocks could be cut at any layer; the cut whose blocks add
    their input back is the block as Keras' example writes it: the depthwise convolution
    first, the stem's activation and norm left in the stem (parity is the test above)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_conv_mixer"), "-o", out)
    code = (out / "model.py").read_text()
    assert "nn.ModuleList([Block() for _ in range(3)])" in code, code
    block = code.split("class Block(nn.Module):")[1].split("\nclass ")[0]
    body = block.split("def forward")[1]
    assert body.split("\n")[1].strip() == "x = self.depthwise_conv2d(inputs)", block
    assert "x = x + inputs" in body, block


def test_an_encoder_decoder_runs_each_stack_in_a_loop(tmp_path):
    """Moonshine's first encoder and decoder layers read the sequence length the embeddings
    have, the later ones their own input's: the same length, carried through the split of
    the gated MLP, the concatenation of the turned and the kept features and `x[..., :d]`.
    So every layer of a stack is one class, run in a loop, and the decoder's causal mask is
    built once, before its layers (parity is the decoder test above)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_moonshine"), "-o", out)
    code = (out / "model.py").read_text()
    assert "nn.ModuleList([EncoderBlock() for _ in range(2)])" in code, code
    assert "nn.ModuleList([DecoderBlock() for _ in range(2)])" in code, code
    assert code.count(".tril()") == 1, code
    layer = code.split("class DecoderBlock(nn.Module):")[1].split("\nclass ")[0]
    assert ".tril()" not in layer and "stack_" not in layer, layer
    # The rotated part of each head is cut at the rotary table's width, a size named so.
    assert "x = query[:, :, :, :dim]" in layer, layer
    # Sizes passed to the layers are hinted as such, tensors as tensors.
    for stack in ("EncoderBlock", "DecoderBlock"):
        block = code.split(f"class {stack}(nn.Module):")[1].split("\nclass ")[0]
        assert "dim: int," in block and "seq_len: int," in block and "inputs: torch.Tensor," in block, block


def test_stacked_expert_kernels_are_named_by_their_part(tmp_path):
    """A mixture of experts' stacked kernels, whose variables a frozen graph leaves unnamed
    (Keras reads them through a `Cast`: `experts/Cast/ReadVariableOp`, `Cast_1`), are named
    by their part in each expert's feed-forward as Hugging Face names them: Qwen-MoE's fused
    `gate_up_proj`, whose product is split, and `down_proj`; keras.io's Switch Transformer's
    `up_proj` and `down_proj`; not `experts` and `experts_2` (parity: the tests above)."""
    for name, first in [("keras_hub_qwen_moe", "gate_up_proj"), ("keras_switch_moe", "up_proj")]:
        out = tmp_path / name
        run_cli("convert", source(name), "-o", out)
        code = (out / "model.py").read_text()
        kernels = re.findall(r"self\.(\w+) = nn\.Parameter\(\s*torch\.empty\(\(\d+, \d+, \d+\)", code)
        # After the scope Keras numbered as it pleased (`switch`, `switch_1`).
        assert len(kernels) == 2, kernels
        assert kernels[0].endswith(f"_{first}") and kernels[1].endswith("_down_proj"), kernels
        if first == "up_proj":
            assert not kernels[0].endswith("gate_up_proj"), kernels
        keys = import_model(out).load_model().state_dict()
        assert any(k.endswith(f"_{first}") for k in keys), list(keys)


def test_keras_io_layers_read_as_their_keras_source(tmp_path):
    """A batch norm with neither scale nor offset is `nn.BatchNorm2d(c, affine=False)`, not
    a multiply and an add by two anonymous buffers; a one-head attention's bias (added by
    BiasAdd) is its projection's, not a buffer added after the head split; Keras' float
    `argmax` tells -0.0 from 0.0 by `torch.signbit`, not by reinterpreting the bits as ints
    (parity: the dynamic test above)."""
    unet, moe = tmp_path / "unet", tmp_path / "moe"
    run_cli("convert", source("keras_diffusion_unet"), "-o", unet)
    run_cli("convert", source("keras_switch_moe"), "-o", moe)
    code = (unet / "model.py").read_text()
    flat = re.sub(r"\(\s+", "(", re.sub(r"\s+", " ", code))
    assert flat.count("nn.BatchNorm2d(num_features, eps=0.001, affine=False)") == 1, code
    assert "batch_normalization_const" not in code and "_bias" not in code, code
    # The attention is inline or a class, as the other layers' numbering makes it.
    assert re.search(r"self\.(attention_)?query = nn\.Linear\(16, 16\)\n", code), code
    code = (moe / "model.py").read_text()
    assert "torch.signbit(" in code and ".view(torch.int32)" not in code, code


def test_keras_prelu_is_nn_prelu_and_trains(tmp_path):
    """Keras' PReLU with one alpha per channel (of a feature map, of a dense layer's
    features) or one for all is `nn.PReLU`, called as one layer, and so are the two forms TF
    code writes by hand (`alpha * minimum(x, 0)`, `alpha * (x - abs(x)) * 0.5`); one alpha
    per element of a map, which no `nn.PReLU` holds, stays the formula with its alpha a
    parameter. Training reaches every alpha (parity, every alpha random: the dynamic test
    above)."""
    import numpy as np
    import torch

    out = tmp_path / "out"
    run_cli("convert", source("keras_prelu"), "-o", out)
    code = (out / "model.py").read_text()
    for ctor in ("nn.PReLU(8)", "nn.PReLU()", "nn.PReLU(6)"):
        assert ctor in code, code
    assert "x = self.p_re_lu(x)" in code and "p_re_lu_const" not in code, code
    assert code.count("nn.PReLU(6)") == 3 and "torch.abs" not in code and ".clamp(" not in code, code
    model = import_model(out).load_model()
    ref = np.load(GENERATED_DIR / "keras_prelu.npz")
    outputs = model(torch.from_numpy(ref["input_0"]), torch.from_numpy(ref["input_1"]))
    sum(o.square().mean() for o in outputs).backward()
    alphas = {n: p for n, p in model.named_parameters() if n.startswith(("p_re_lu", "prelu"))}
    assert len(alphas) == 6 and all(p.grad is not None for p in alphas.values()), sorted(alphas)


def test_a_scale_trained_in_log_space_is_exponentiated_in_forward(tmp_path):
    """SigLIP trains its logit scale as a logarithm and multiplies the logits by its `exp`:
    the parameter is the logarithm and `forward` exponentiates it, so training moves it, not
    a number folded from it (parity: the decoder test)."""
    out = tmp_path / "out"
    run_cli("convert", source("keras_hub_siglip"), "-o", out)
    code = (out / "model.py").read_text()
    scale = re.search(r"= torch\.exp\(self\.(\w+)\)", code)
    assert scale, code
    model = import_model(out).load_model()
    assert dict(model.named_parameters())[scale.group(1)].numel() == 1, code


def test_a_trained_weight_laid_out_anew_stays_trainable(tmp_path):
    """SigLIP's attention-pooling probe and MMDiT's position embedding are trained weights the
    graph reshapes (a probe expanded to `[1, 1, 1, D]`, a table cropped and flattened): each
    is an `nn.Parameter` that training updates, not a buffer folded from it (parity: the
    dynamic test above)."""
    for name, weight in [("keras_hub_siglip", "head"), ("keras_hub_mmdit", "position_embedding")]:
        out = tmp_path / name
        run_cli("convert", source(name), "-o", out)
        code = (out / "model.py").read_text()
        assert f"self.{weight} = nn.Parameter(" in code, code
        assert f"{weight}_const" not in code, code
        model = import_model(out).load_model()
        trained = {k.split(".")[-1]: p for k, p in model.named_parameters()}
        assert weight in trained and trained[weight].requires_grad, sorted(trained)
