"""Converts keras-hub backbones no test uses (tiny configs, random weights and norm
statistics) and compares each with TensorFlow at two input sizes: a measure of the general
case, not a test. Needs the venv with TensorFlow and keras-hub (scripts/setup.sh WITH_TF=1).

    .venv/bin/python scripts/sweep.py [--out DIR] [MODEL ...]   # default: every model below

Prints one line per model: parity (max relative error over outputs and sizes) or the reason
it failed, and the size of the generated model.py (lines, classes). With `--saved` every sweep
writes its models as SavedModel directories (functions, variables and control flow as TF
keeps them) instead of frozen GraphDefs, and converts those. With `--dtype bfloat16` (or
`float16`) the text backbones are built as bfloat16 presets load (`dtype="bfloat16"`: 16-bit
weights and arithmetic, norms and softmax in float32), their outputs compared as float32
within the dtype's TOLERANCE, or as near the same model computed in float32 as TF's (within
half again: see `from_float32`).
"""

import argparse
import importlib.util
import inspect
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TF runs channels-first (NCHW) convolutions on the CPU only through oneDNN, which it turns
# on by itself only on CPUs with AVX-512: on everywhere, so the same models build anywhere.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

TEXT = {
    "vocabulary_size": 500,
    "num_layers": 2,
    "hidden_dim": 32,
    "intermediate_dim": 64,
}
TEXT_EXTRA = {
    "num_heads": 2,
    "num_query_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 16,
    "max_sequence_length": 64,
    "num_attention_heads": 2,
    "embedding_dim": 32,
    "num_experts": 4,
    "top_k": 2,
    "num_experts_per_tok": 2,
    "moe_intermediate_dim": 32,
    "shared_expert_intermediate_dim": 32,
    "head_size": 16,
    "vocab_size": 500,
    "image_size": 32,
    "sliding_window_size": 8,
    "expert_intermediate_dim": 32,
    "num_experts_per_token": 2,
}
IMAGE = (32, 32, 3)
# One encoder-decoder config for both T5Gemma generations (the first adds soft-capping).
T5GEMMA = {
    "vocabulary_size": 500,
    "encoder_hidden_dim": 32,
    "encoder_intermediate_dim": 64,
    "encoder_num_layers": 2,
    "encoder_num_attention_heads": 2,
    "encoder_num_key_value_heads": 1,
    "encoder_head_dim": 16,
    "encoder_layer_types": ["sliding_attention", "full_attention"],
    "decoder_hidden_dim": 32,
    "decoder_intermediate_dim": 64,
    "decoder_num_layers": 2,
    "decoder_num_attention_heads": 2,
    "decoder_num_key_value_heads": 1,
    "decoder_head_dim": 16,
    "decoder_layer_types": ["sliding_attention", "full_attention"],
    "sliding_window": 4,
}
# One decoder config for both SmolLM generations.
SMOLLM = dict(
    TEXT,
    num_attention_heads=2,
    num_key_value_heads=1,
    attention_bias=False,
    attention_dropout=0.0,
    rope_layer_enabled_list=[True, False],
    layer_types=["attention", "attention"],
    mlp_bias=False,
    layer_norm_epsilon=1e-6,
    max_position_embeddings=64,
    rope_theta=10000.0,
    partial_rotary_factor=1.0,
)

# Full attention only: TF cannot trace Qwen 3.5's linear-attention layers.
QWEN3_5 = dict(
    TEXT,
    num_query_heads=2,
    num_key_value_heads=1,
    head_dim=16,
    layer_types=["full_attention", "full_attention"],
    linear_num_key_heads=2,
    linear_num_value_heads=2,
    linear_key_head_dim=16,
    linear_value_head_dim=16,
    linear_conv_kernel_dim=4,
)

VISION = {
    "ViTBackbone": {
        "image_shape": IMAGE,
        "patch_size": 8,
        "num_layers": 2,
        "num_heads": 2,
        "hidden_dim": 32,
        "mlp_dim": 64,
    },
    "DeiTBackbone": {
        "image_shape": IMAGE,
        "patch_size": 8,
        "num_layers": 2,
        "num_heads": 2,
        "hidden_dim": 32,
        "intermediate_dim": 64,
    },
    "DINOV2Backbone": {
        "patch_size": 8,
        "num_layers": 2,
        "hidden_dim": 32,
        "num_heads": 2,
        "intermediate_dim": 64,
        "image_shape": IMAGE,
        "position_embedding_shape": IMAGE,
        "num_register_tokens": 2,
        "use_swiglu_ffn": True,
    },
    "MiTBackbone": {
        "layerwise_depths": [1, 1],
        "num_layers": 2,
        "layerwise_num_heads": [1, 2],
        "layerwise_sr_ratios": [2, 1],
        "max_drop_path_rate": 0.0,
        "layerwise_patch_sizes": [7, 3],
        "layerwise_strides": [4, 2],
        "image_shape": IMAGE,
        "hidden_dims": [16, 32],
    },
    "SwinTransformerBackbone": {
        "image_shape": IMAGE,
        "embed_dim": 16,
        "depths": [2, 2],
        "num_heads": [1, 2],
        "window_size": 4,
        "patch_size": 2,
        "drop_path": 0.0,
    },
    "ResNetBackbone": {
        "input_conv_filters": [16],
        "input_conv_kernel_sizes": [3],
        "stackwise_num_filters": [64, 32],
        "stackwise_num_blocks": [2, 2],
        "stackwise_num_strides": [1, 2],
        "block_type": "bottleneck_block",
        "image_shape": IMAGE,
    },
    "CSPNetBackbone": {
        "stem_filters": 16,
        "stem_kernel_size": 3,
        "stem_strides": 2,
        "stackwise_depth": [1, 2],
        "stackwise_strides": [2, 2],
        "stackwise_num_filters": [32, 64],
        "block_type": "dark_block",
        "stage_type": "dark",
        "image_shape": IMAGE,
    },
    "DenseNetBackbone": {
        "stackwise_num_repeats": [2, 2],
        "image_shape": IMAGE,
        "growth_rate": 8,
    },
    "XceptionBackbone": {
        "stackwise_conv_filters": [
            [32, 64],
            [64, 128],
            [128, 128],
            [128, 128],
            [256, 256],
        ],
        "stackwise_pooling": [False, True, False, False, True],
        "image_shape": IMAGE,
    },
    "ViTDetBackbone": {
        "hidden_size": 32,
        "num_layers": 2,
        "intermediate_dim": 64,
        "num_heads": 2,
        "global_attention_layer_indices": [1],
        "image_shape": IMAGE,
        "patch_size": 4,
        "num_output_channels": 16,
        "window_size": 4,
    },
    "VGGBackbone": {
        "stackwise_num_repeats": [2, 3],
        "stackwise_num_filters": [16, 32],
        "image_shape": IMAGE,
    },
    "EfficientNetBackbone": {
        "stackwise_kernel_sizes": [3, 3, 3, 3],
        "stackwise_num_repeats": [1, 2, 2, 2],
        "stackwise_input_filters": [16, 16, 24, 32],
        "stackwise_output_filters": [16, 24, 32, 48],
        "stackwise_expansion_ratios": [1, 4, 4, 6],
        "stackwise_squeeze_and_excite_ratios": [0.0, 0.0, 0.25, 0.25],
        "stackwise_strides": [1, 2, 2, 1],
        "stackwise_block_types": ["fused", "fused", "unfused", "unfused"],
        "stackwise_force_input_filters": [0] * 4,
        "stackwise_width_coefficients": [1.0] * 4,
        "stackwise_depth_coefficients": [1.0] * 4,
        "stackwise_nores_option": [False] * 4,
        "num_features": 64,
        "input_shape": IMAGE,
    },
    "HGNetV2Backbone": {
        "embedding_size": 32,
        "stem_channels": [3, 16, 32],
        "hidden_act": "relu",
        "use_learnable_affine_block": True,
        "image_shape": IMAGE,
        "depths": [1, 2],
        "hidden_sizes": [64, 128],
        "stackwise_stage_filters": [[32, 16, 64, 1, 1, 3], [64, 32, 128, 2, 1, 3]],
        "apply_downsample": [False, True],
        "use_lightweight_conv_block": [False, True],
    },
    "SmolLM3Backbone": SMOLLM,
    "T5GemmaBackbone": {**T5GEMMA, "attn_logit_softcapping": 50.0},
    "DINOV3Backbone": {
        "patch_size": 8,
        "num_layers": 2,
        "hidden_dim": 32,
        "num_heads": 2,
        "intermediate_dim": 64,
        "image_shape": IMAGE,
        "use_gated_mlp": True,
    },
    "T5Backbone": dict(TEXT, num_heads=2),
    "BartBackbone": dict(TEXT, num_heads=2, max_sequence_length=64),
    "WhisperBackbone": dict(
        TEXT,
        num_heads=2,
        num_mels=16,
        max_encoder_sequence_length=32,
        max_decoder_sequence_length=32,
    ),
    "SmolLMBackbone": SMOLLM,
    "T5Gemma2Backbone": T5GEMMA,
    "Gemma3nBackbone": {
        "text_vocab_size": 500,
        "text_hidden_size": 32,
        "num_hidden_layers": 2,
        "pad_token_id": 0,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "intermediate_size": [64, 64],
        "hidden_activation": "gelu_approximate",
        "layer_types": ["sliding_attention", "full_attention"],
        "sliding_window": 4,
        "rope_theta": 10000.0,
        "max_position_embeddings": 64,
        "vocab_size_per_layer_input": 500,
        "hidden_size_per_layer_input": 8,
        "altup_num_inputs": 2,
        "laurel_rank": 4,
    },
    # Gemma 3n's vision tower: inverted residuals, universal inverted bottlenecks with
    # start/end depthwise convs, multi-query attention with strided keys, RMS norms, layer
    # scale, the multi-scale fusion head.
    "MobileNetV5Backbone": {
        "stackwise_block_types": [["er"], ["uir", "uir"], ["uir", "mqa"]],
        "stackwise_num_blocks": [1, 2, 2],
        "stackwise_num_filters": [[16], [24, 24], [32, 32]],
        "stackwise_strides": [[2], [2, 1], [2, 1]],
        "stackwise_act_layers": [["relu"], ["gelu", "gelu"], ["gelu", "gelu"]],
        "stackwise_exp_ratios": [[4.0], [4.0, 2.0], [4.0, 0.0]],
        "stackwise_se_ratios": [[0.0], [0.0, 0.0], [0.0, 0.0]],
        "stackwise_dw_kernel_sizes": [[0], [5, 3], [3, 0]],
        "stackwise_dw_start_kernel_sizes": [[0], [3, 0], [0, 0]],
        "stackwise_dw_end_kernel_sizes": [[0], [0, 3], [0, 0]],
        "stackwise_exp_kernel_sizes": [[3], [0, 0], [0, 0]],
        "stackwise_pw_kernel_sizes": [[1], [0, 0], [0, 0]],
        "stackwise_num_heads": [[0], [0, 0], [0, 2]],
        "stackwise_key_dims": [[0], [0, 0], [0, 16]],
        "stackwise_value_dims": [[0], [0, 0], [0, 16]],
        "stackwise_kv_strides": [[0], [0, 0], [0, 2]],
        "stackwise_use_cpe": [[False], [False, False], [False, False]],
        "num_features": 64,
        "msfa_output_resolution": 2,
        "image_shape": (64, 64, 3),
        "layer_scale_init_value": 1e-5,
    },
    "PaliGemmaBackbone": {
        "vocabulary_size": 500,
        "image_size": 32,
        "num_layers": 2,
        "num_query_heads": 2,
        "num_key_value_heads": 1,
        "hidden_dim": 32,
        "intermediate_dim": 64,
        "head_dim": 16,
        "vit_patch_size": 8,
        "vit_num_heads": 2,
        "vit_hidden_dim": 32,
        "vit_num_layers": 2,
        "vit_intermediate_dim": 64,
    },
    "Qwen3_5Backbone": QWEN3_5,
    # A mixture of experts with a shared expert in each layer.
    "Qwen3_5MoeBackbone": dict(
        QWEN3_5,
        moe_intermediate_dim=32,
        num_experts=4,
        top_k=2,
        shared_expert_intermediate_size=32,
    ),
    # RWKV-7: token shift, low-rank gates and a linear-attention state carried over time.
    "RWKV7Backbone": {
        "hidden_size": 32,
        "head_size": 16,
        "num_layers": 2,
        "vocabulary_size": 500,
        "intermediate_dim": 64,
        "gate_lora": 16,
        "mv_lora": 8,
        "aaa_lora": 8,
        "decay_lora": 8,
    },
    "FluxBackbone": {
        "input_channels": 16,
        "hidden_size": 32,
        "mlp_ratio": 2.0,
        "num_heads": 2,
        "depth": 1,
        "depth_single_blocks": 1,
        "axes_dim": [4, 6, 6],
        "theta": 10000,
        "use_bias": True,
        "guidance_embed": False,
        "image_shape": (16, 16),
        "text_shape": (8, 16),
        "image_ids_shape": (16, 3),
        "text_ids_shape": (8, 3),
        "y_shape": (16,),
    },
}


def _mit(M):
    return M.MiTBackbone(
        layerwise_depths=[1, 1],
        num_layers=2,
        layerwise_num_heads=[1, 2],
        layerwise_sr_ratios=[2, 1],
        max_drop_path_rate=0.0,
        layerwise_patch_sizes=[7, 3],
        layerwise_strides=[4, 2],
        hidden_dims=[16, 32],
        image_shape=(64, 64, 3),
    )


def _sam(M):
    from keras_hub.src.models.sam.sam_mask_decoder import SAMMaskDecoder
    from keras_hub.src.models.sam.sam_prompt_encoder import SAMPromptEncoder

    encoder = M.ViTDetBackbone(
        hidden_size=32,
        num_layers=2,
        intermediate_dim=64,
        num_heads=2,
        global_attention_layer_indices=[1],
        patch_size=8,
        window_size=2,
        image_shape=(64, 64, 3),
    )
    prompts = SAMPromptEncoder(
        hidden_size=32,
        image_embedding_size=(8, 8),
        input_image_size=(64, 64),
        mask_in_channels=16,
    )
    masks = SAMMaskDecoder(
        num_layers=2,
        hidden_size=32,
        intermediate_dim=64,
        num_heads=2,
        embedding_dim=32,
        num_multimask_outputs=3,
        iou_head_depth=2,
        iou_head_hidden_dim=32,
    )
    return M.SAMBackbone(
        image_encoder=encoder, prompt_encoder=prompts, mask_decoder=masks
    )


def _dfine(M):
    hgnetv2 = M.HGNetV2Backbone(
        stem_channels=[3, 16, 16],
        stackwise_stage_filters=[
            [16, 16, 64, 1, 3, 3],
            [64, 32, 256, 1, 3, 3],
            [256, 64, 512, 2, 3, 5],
            [512, 128, 1024, 1, 3, 5],
        ],
        apply_downsample=[False, True, True, True],
        use_lightweight_conv_block=[False, False, True, True],
        depths=[1, 1, 2, 1],
        hidden_sizes=[64, 256, 512, 1024],
        embedding_size=16,
        use_learnable_affine_block=True,
        hidden_act="relu",
        image_shape=(None, None, 3),
        out_features=["stage3", "stage4"],
        data_format="channels_last",
    )
    return M.DFineBackbone(
        backbone=hgnetv2,
        decoder_in_channels=[32, 32],
        encoder_hidden_dim=32,
        num_denoising=0,
        num_labels=10,
        hidden_dim=32,
        learn_initial_query=False,
        num_queries=20,
        anchor_image_size=(64, 64),
        feat_strides=[16, 32],
        num_feature_levels=2,
        encoder_in_channels=[512, 1024],
        encode_proj_layers=[1],
        num_attention_heads=2,
        encoder_ffn_dim=64,
        num_encoder_layers=1,
        hidden_expansion=0.34,
        depth_multiplier=0.5,
        eval_idx=-1,
        num_decoder_layers=2,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        decoder_n_points=[2, 2],
        lqe_hidden_dim=16,
        num_lqe_layers=2,
        out_features=["stage3", "stage4"],
        image_shape=(64, 64, 3),
        data_format="channels_last",
        seed=0,
    )


def _resnet(
    M,
    block_type="bottleneck_block",
    filters=(64, 32, 32, 32),
    stem=16,
    shape=(64, 64, 3),
):
    return M.ResNetBackbone(
        input_conv_filters=[stem],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=list(filters),
        stackwise_num_blocks=[1, 1, 1, 1],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type=block_type,
        use_pre_activation=False,
        image_shape=shape,
    )


def _blip2(M):
    """BLIP-2: a ViT, the Q-Former's query tokens attending to it, and OPT reading them."""
    from keras_hub.src.models.blip2 import blip2_custom_opt as opt
    from keras_hub.src.models.blip2 import blip2_qformer as qformer
    from keras_hub.src.models.blip2 import blip2_vision_encoder as vision

    common = {"num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64}
    return M.BLIP2Backbone(
        vision_encoder=vision.BLIP2VisionEncoder(
            image_size=32,
            patch_size=8,
            num_layers=1,
            use_patch_bias=True,
            use_class_token=True,
            use_mha_bias=True,
            use_mlp_bias=True,
            dropout_rate=0.0,
            layer_norm_epsilon=1e-6,
            initializer_range=0.02,
            **common,
        ),
        qformer=qformer.BLIP2QFormer(
            num_query_tokens=4,
            num_layers=2,
            vision_dim=32,
            cross_attention_frequency=2,
            dropout=0.0,
            layer_norm_epsilon=1e-12,
            **common,
        ),
        language_model=opt.BLIP2CustomOPT(
            vocabulary_size=500,
            num_layers=2,
            num_query_tokens=4,
            dropout=0.0,
            max_sequence_length=64,
            qformer_hidden_dim=32,
            **common,
        ),
    )


def _sam3(M):
    """SAM 3: a windowed ViT with an FPN, a text encoder, a box-prompt encoder (ROI-aligned
    features), a DETR encoder-decoder fusing them and a mask decoder (keras-hub's own tiny
    example, at 112 pixels)."""
    import keras_hub

    L = keras_hub.layers
    common = {"hidden_dim": 32, "intermediate_dim": 64, "num_heads": 2}
    return M.SAM3PromptableConceptBackbone(
        vision_encoder=L.SAM3VisionEncoder(
            image_shape=(112, 112, 3),
            patch_size=14,
            num_layers=2,
            fpn_hidden_dim=32,
            fpn_scale_factors=[4.0, 2.0, 1.0, 0.5],
            pretrain_image_shape=(56, 56, 3),
            window_size=2,
            global_attn_indexes=[1],
            **common,
        ),
        text_encoder=L.SAM3TextEncoder(
            vocabulary_size=500, embedding_dim=32, num_layers=1, **common
        ),
        geometry_encoder=L.SAM3GeometryEncoder(num_layers=1, roi_size=7, **common),
        detr_encoder=L.SAM3DetrEncoder(num_layers=1, **common),
        detr_decoder=L.SAM3DetrDecoder(
            image_shape=(112, 112, 3),
            patch_size=14,
            num_layers=1,
            num_queries=10,
            **common,
        ),
        mask_decoder=L.SAM3MaskDecoder(
            num_upsampling_stages=3, hidden_dim=32, num_heads=2
        ),
    )


def _mobilenet(M):
    return M.MobileNetBackbone(
        stackwise_expansion=[[1], [4, 3], [4, 6]],
        stackwise_num_blocks=[1, 2, 2],
        stackwise_num_filters=[[16], [24, 24], [40, 40]],
        stackwise_kernel_size=[[3], [3, 3], [5, 5]],
        stackwise_num_strides=[[2], [2, 1], [2, 1]],
        stackwise_se_ratio=[[0.25], [None, None], [0.25, 0.25]],
        stackwise_activation=[["relu"], ["relu", "relu"], ["hard_swish", "hard_swish"]],
        stackwise_padding=[[1], [1, 1], [2, 2]],
        output_num_filters=64,
        depthwise_filters=16,
        depthwise_stride=2,
        depthwise_residual=False,
        last_layer_filter=64,
        squeeze_and_excite=0.5,
        image_shape=(32, 32, 3),
    )


def _two_towers(M, kind, **extra):
    """A CLIP-like backbone: a ViT and a text transformer, each tiny."""
    vision = getattr(M, f"{kind}VisionEncoder")(
        patch_size=8,
        hidden_dim=32,
        num_layers=2,
        num_heads=2,
        intermediate_dim=64,
        image_shape=(32, 32, 3),
    )
    text = getattr(M, f"{kind}TextEncoder")(
        vocabulary_size=500,
        embedding_dim=32,
        hidden_dim=32,
        num_layers=2,
        num_heads=2,
        intermediate_dim=64,
        max_sequence_length=12,
    )
    return getattr(M, f"{kind}Backbone")(
        vision_encoder=vision, text_encoder=text, **extra
    )


def _depth_anything(M):
    dinov2 = M.DINOV2Backbone(
        patch_size=14,
        num_layers=4,
        hidden_dim=32,
        num_heads=2,
        intermediate_dim=64,
        image_shape=(112, 112, 3),
        position_embedding_shape=(518, 518),
    )
    return M.DepthAnythingBackbone(
        image_encoder=dinov2,
        reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_dims=[16, 32, 64, 128],
        fusion_hidden_dim=32,
        head_hidden_dim=16,
        head_in_index=-1,
        feature_keys=["stage1", "stage2", "stage3", "stage4"],
    )


# Text towers whose learned positions read sequences of exactly this length.
FIXED_LENGTH = {"SigLIPBackbone": 12, "RWKV7Backbone": 12}
# Backbones that loop over the sequence in Python: traced for one length only.
TRACED_LENGTH = {"RWKV7Backbone"}

# Backbones built from others (`keras_hub.models` in, the model out).
COMPOSITE = {
    "MobileNetBackbone": _mobilenet,
    "CLIPBackbone": lambda M: _two_towers(M, "CLIP", projection_dim=16),
    "SigLIPBackbone": lambda M: _two_towers(M, "SigLIP"),
    "VideoPrismBackbone": lambda M: M.VideoPrismBackbone(
        num_frames=2,
        patch_size=8,
        hidden_dim=32,
        intermediate_dim=64,
        num_heads=2,
        num_spatial_layers=1,
        num_temporal_layers=1,
        num_auxiliary_layers=0,
        image_shape=(16, 16, 3),
    ),
    "DepthAnythingBackbone": _depth_anything,
    "DeepLabV3Backbone": lambda M: M.DeepLabV3Backbone(
        image_encoder=_resnet(M),
        projection_filters=16,
        low_level_feature_key="P2",
        spatial_pyramid_pooling_key="P5",
        upsampling_size=8,
        dilation_rates=[6, 12, 18],
        image_shape=(64, 64, 3),
    ),
    "BASNetBackbone": lambda M: M.BASNetBackbone(
        image_encoder=_resnet(
            M, "basic_block", (64, 64, 64, 64), stem=64, shape=(None, None, 3)
        ),
        num_classes=1,
        projection_filters=64,
        image_shape=(64, 64, 3),
    ),
    "PARSeqBackbone": lambda M: M.PARSeqBackbone(
        image_encoder=M.ViTBackbone(
            image_shape=(32, 128, 3),
            patch_size=(8, 8),
            num_layers=1,
            num_heads=2,
            hidden_dim=32,
            mlp_dim=64,
            use_class_token=False,
        ),
        vocabulary_size=500,
        max_label_length=12,
        decoder_hidden_dim=32,
        num_decoder_layers=1,
        num_decoder_heads=2,
        decoder_mlp_dim=64,
    ),
    "BLIP2Backbone": _blip2,
    "RetinaNetBackbone": lambda M: M.RetinaNetBackbone(
        image_encoder=_resnet(M),
        min_level=3,
        max_level=5,
        use_p5=False,
        image_shape=(64, 64, 3),
    ),
    "EdRecBackbone": lambda M: M.EdRecBackbone(
        vocab_size=500,
        num_layers_enc=2,
        num_layers_dec=2,
        hidden_dim=32,
        intermediate_dim=64,
        num_heads=2,
    ),
    "SegFormerBackbone": lambda M: M.SegFormerBackbone(
        image_encoder=_mit(M), projection_filters=16
    ),
    "SAMBackbone": _sam,
    "SAM3PromptableConceptBackbone": _sam3,
    "DFineBackbone": _dfine,
    "MetaCLIP2Backbone": lambda M: _two_towers(M, "MetaCLIP2", projection_dim=16),
}
TEXT_MODELS = [
    "GPTNeoXBackbone",
    "Llama3Backbone",
    "Qwen2Backbone",
    "Qwen3Backbone",
    "MixtralBackbone",
    "QwenMoeBackbone",
    "Qwen3MoeBackbone",
    "GptOssBackbone",
    "Gemma3Backbone",
    "RoformerV2Backbone",
    "XLMRobertaBackbone",
    "ESM2Backbone",
    "ElectraBackbone",
    "XLNetBackbone",
    "OPTBackbone",
    "Phi3Backbone",
    "MistralBackbone",
    "QwenBackbone",
    "Gemma4Backbone",
    "RobertaBackbone",
    "DistilBertBackbone",
    "ESMBackbone",
]


# Set by `--dtype`: the text backbones' dtype policy (None: float32).
DTYPE = None
# How far a model computed in a 16-bit float may lie from TF's. bfloat16 keeps 8 significant
# bits: TF's and torch's sums round apart by about 1e-2 of the outputs through two layers
# (see test_a_bfloat16_model_computes_in_bfloat16); float16 keeps 11.
TOLERANCE = {None: 1e-4, "bfloat16": 5e-2, "float16": 5e-3}


def build(name):
    import keras
    import keras_hub

    keras.utils.set_random_seed(1234)
    if name in COMPOSITE:
        return COMPOSITE[name](keras_hub.models)
    cls = getattr(keras_hub.models, name)
    if name in VISION:
        return cls(**VISION[name])
    params = inspect.signature(cls.__init__).parameters
    config = {k: v for k, v in {**TEXT, **TEXT_EXTRA}.items() if k in params}
    if DTYPE:
        config["dtype"] = DTYPE
    return cls(**config)


def randomise(model, r):
    import numpy as np

    for v in model.weights:
        if any(k in v.path for k in ("bias", "beta", "moving_mean")):
            v.assign(r.normal(0, 0.1, v.shape).astype(np.float32))
        elif any(k in v.path for k in ("gamma", "moving_var")) or (
            v.path.endswith("scale") and "layer_scale" not in v.path
        ):
            v.assign(r.uniform(0.5, 1.5, v.shape).astype(np.float32))


def feeds(model, keys, r, short=7):
    import numpy as np

    def one(batch, length):
        out = []
        for key, t in zip(keys, model_inputs(model)):
            # One box prompt: SAM 3's geometry encoder hands its self-attention a [B, S] mask,
            # which Keras broadcasts as [1, B, S], so only B == S (a box and the CLS token)
            # runs at batch 2.
            n = 1 if "box" in key else length
            shape = [batch] + [d if d is not None else n for d in t.shape[1:]]
            if "padding_mask" in key:
                a = np.ones(shape, np.int32)
                a[-1, length // 2 :] = 0
                if "bool" in str(t.dtype):
                    a = a.astype(bool)
            elif "int" in str(t.dtype):
                classes = 2 if "segment" in key or "label" in key else 500
                a = r.randint(0, classes, shape).astype(np.int32)
            elif "boxes" in key:
                # Box corners inside the image.
                a = r.uniform(0.1, 0.5, shape).astype(np.float32)
            else:
                a = r.uniform(-1, 1, shape).astype(np.float32)
            out.append(a)
        return out

    return [one(2, 12), one(1, short)]


def model_inputs(model):
    if isinstance(model.input, dict):
        return [model.input[k] for k in model.input]
    return list(model.input) if isinstance(model.input, list) else [model.input]


def run(out, npz, keys):
    """The module in `out` run on the inputs in `npz` (fed by name): its outputs, and the
    npz's data."""
    import numpy as np
    import torch

    spec = importlib.util.spec_from_file_location(
        "swept", os.path.join(out, "model.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    m = module.load_model()
    data = np.load(npz)
    params = list(inspect.signature(m.forward).parameters)
    if sorted(params) == sorted(keys):
        # `general.frozen` saved the inputs in the graph's placeholder order, which TF may
        # change between runs and which is `forward`'s.
        keys = params
    by_name = {k: torch.from_numpy(data[f"input_{i}"]) for i, k in enumerate(keys)}
    with torch.no_grad():
        got = m(*[by_name[p] for p in params])
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    # Float64, so that boolean outputs (a padding mask passed through) compare too; numpy
    # has no bfloat16.
    wide = [g.float() if g.dtype == torch.bfloat16 else g for g in got]
    return [g.numpy().astype(np.float64) for g in wide], data


def relative(got, want):
    import numpy as np

    return float(np.abs(got - want).max() / (np.abs(want).max() + 1e-12))


def check(out, npz, keys):
    """Max relative error of the module in `out` on the inputs in `npz` (fed by name)."""
    got, data = run(out, npz, keys)
    errors = []
    for i, g in enumerate(got):
        want = data[f"output_{i}"].astype("float64")
        if g.shape != want.shape:
            raise AssertionError(
                f"output {i}: shape {tuple(g.shape)}, TF's {want.shape}"
            )
        errors.append(relative(g, want))
    return max(errors)


def from_float32(out, npz, keys):
    """A 16-bit model: how far TF's outputs and ours lie from the same model computed in
    float32 (the generated code with DTYPE read as float32, on the same weights), as
    `(TF's, ours)`: where rounding to 8 (or 11) bits through the layers moves TF's own
    outputs far, two 16-bit computations may lie as far apart."""
    wide = out + "_float32"
    os.makedirs(wide, exist_ok=True)
    with open(os.path.join(out, "model.py")) as f:
        code = f.read().replace(f"torch.{DTYPE}", "torch.float32")
    with open(os.path.join(wide, "model.py"), "w") as f:
        f.write(code)
    weights = os.path.join(wide, "model.safetensors")
    if not os.path.exists(weights):
        os.symlink(os.path.abspath(os.path.join(out, "model.safetensors")), weights)
    (truth, *_), data = run(wide, npz, keys)
    (ours, *_), _ = run(out, npz, keys)
    return relative(data["output_0"].astype("float64"), truth), relative(ours, truth)


def sweep(name, out_dir):
    import general
    import numpy as np
    import tensorflow as tf

    model = build(name)
    randomise(model, np.random.RandomState(7))
    dict_input = isinstance(model.input, dict)
    # Gemma3n takes a list of named inputs.
    list_input = isinstance(model.input, list)
    if dict_input:
        keys = list(model.input)
    else:
        keys = [t.name for t in model.input] if list_input else ["images"]
    specs = [
        general.spec(None, *t.shape[1:], dtype=tf.as_dtype(t.dtype), name=k)
        for k, t in zip(keys, model_inputs(model))
    ]
    if name in TRACED_LENGTH:
        fixed = FIXED_LENGTH[name]
        specs = [
            general.spec(None, fixed, *s.shape[2:], dtype=s.dtype, name=s.name)
            for s in specs
        ]

    def fn(*args):
        if dict_input:
            o = model(dict(zip(keys, args)), training=False)
        else:
            o = model(list(args) if list_input else args[0], training=False)
        o = [o[k] for k in sorted(o)] if isinstance(o, dict) else o
        # Compared as float32: numpy has no bfloat16.
        narrow = (tf.bfloat16, tf.float16)
        widen = lambda t: tf.cast(t, tf.float32) if t.dtype in narrow else t
        return tf.nest.map_structure(widen, o)

    stem = name.removesuffix("Backbone").lower()
    write_model(
        out_dir,
        stem,
        fn,
        specs,
        feeds(model, keys, np.random.RandomState(8), FIXED_LENGTH.get(name, 7)),
        track=model,
    )
    result = convert_and_compare(out_dir, stem, keys)
    if isinstance(result, str):
        return result
    error, code = result
    return f"{verdict(error)}  ({size(code)})"


# Set by `--saved`: models are written and converted as SavedModels, not frozen graphs.
AS_SAVED_MODEL = False


def write_model(out_dir, stem, fn, specs, feeds, track=None):
    """`fn` as the model file the sweep converts (a frozen `stem.pb`, or with `--saved` a
    SavedModel directory `stem` whose variables are `track`'s, by default the ones `fn`
    reads), and TensorFlow's outputs on `feeds` beside it."""
    import general
    import tensorflow as tf

    if not AS_SAVED_MODEL:
        return general.frozen(out_dir, stem, fn, specs, feeds)
    if track is None:
        track = list(tf.function(fn).get_concrete_function(*specs).variables)
    # A signature's outputs are flat (D-FINE returns tuples in its list), as a frozen
    # graph's are.
    model_fn = fn

    def fn(*args):
        return tf.nest.flatten(model_fn(*args))

    try:
        general.saved(out_dir, stem, fn, specs, feeds, track=track)
    except TypeError:
        # Saving a Keras model traces its own serving signature too, which fails for a
        # model whose call takes more than its inputs (Flux's modulation): its variables
        # alone, then.
        general.saved(out_dir, stem, fn, specs, feeds, track=list(track.variables))


def convert_and_compare(out_dir, stem, keys):
    """Converts the model `write_model` wrote (strict) into `out_dir/out_stem` and compares
    it with TensorFlow's outputs at both sizes: `(max relative error, model.py)`, or why the
    conversion failed."""
    out = os.path.join(out_dir, f"out_{stem}")
    binary = os.path.join(ROOT, "target", "release", "tf2torch")
    source = os.path.join(out_dir, stem if AS_SAVED_MODEL else stem + ".pb")
    proc = subprocess.run(
        [binary, "convert", source, "-o", out, "--strict", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        return f"convert failed: {proc.stderr.strip().splitlines()[-1]}"
    npzs = [os.path.join(out_dir, stem + s + ".npz") for s in ("", "_b")]
    error = max(check(out, npz, keys) for npz in npzs)
    with open(os.path.join(out, "model.py")) as f:
        code = f.read()
    if DTYPE and error > TOLERANCE[DTYPE]:
        # Ours as near the float32 computation as TF's (within half again) is parity too.
        tf_err, ours = (
            max(e) for e in zip(*(from_float32(out, n, keys) for n in npzs))
        )
        if ours <= 1.5 * tf_err:
            error = (error, tf_err, ours)
    return error, code


def sweep_image_model(out_dir, name, model, pixels):
    """Writes `model` (an image classifier taking `pixels`x`pixels` RGB images) at batches 2
    and 1 of random pixels, converts it and compares: the sweep's line for it."""
    import general
    import numpy as np
    import tensorflow as tf

    r = np.random.RandomState(4)
    shape = (pixels, pixels, 3)
    two = [[r.uniform(0, 255, (b, *shape)).astype(np.float32)] for b in (2, 1)]
    spec = general.spec(None, *shape, dtype=tf.float32, name="images")
    write_model(
        out_dir, name, lambda x: model(x, training=False), [spec], two, track=model
    )
    result = convert_and_compare(out_dir, name, ["images"])
    if isinstance(result, str):
        return result
    error, code = result
    return f"{verdict(error)}  ({size(code)})"


def verdict(error):
    if isinstance(error, tuple):
        error, tf_err, ours = error
        return f"ok {error:.2g} (from float32: TF {tf_err:.2g}, ours {ours:.2g})"
    return f"{'ok' if error <= TOLERANCE[DTYPE] else 'MISMATCH'} {error:.2g}"


def main():
    global DTYPE
    dtype = argparse.ArgumentParser(add_help=False)
    dtype.add_argument(
        "--dtype", choices=["bfloat16", "float16"], help="the text backbones' dtype"
    )
    known, rest = dtype.parse_known_args()
    DTYPE = known.dtype
    names = TEXT_MODELS if DTYPE else TEXT_MODELS + list(VISION) + list(COMPOSITE)
    sys.argv[1:] = rest
    cli(__doc__, sweep, names, "sweep", 26, parents=[dtype])


def cli(doc, sweep_one, names, out_name, width, parents=()):
    """A sweep script's command line: `[--saved] [--out DIR] [MODEL ...]`, every model by
    default."""
    global AS_SAVED_MODEL
    p = argparse.ArgumentParser(description=doc.splitlines()[0], parents=list(parents))
    p.add_argument("--out", default=os.path.join(ROOT, "build", out_name))
    p.add_argument(
        "--saved",
        action="store_true",
        help="write and convert SavedModel directories instead of frozen graphs",
    )
    p.add_argument("models", nargs="*")
    args = p.parse_args()
    AS_SAVED_MODEL = args.saved
    run_all(sweep_one, args.models or names, args.out, width)


def size(code):
    """A generated model.py's size: its lines and classes."""
    return f"{code.count(chr(10))} lines, {code.count(chr(10) + 'class ')} classes"


def run_all(sweep_one, names, out_dir, width):
    """`sweep_one(name, out_dir)` for each model, one line each; a model that cannot be built
    here, or any error running it, is reported, and the sweep goes on."""
    os.makedirs(out_dir, exist_ok=True)
    for name in names:
        try:
            result = sweep_one(name, out_dir)
        except Exception as e:  # noqa: BLE001
            result = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
        print(f"{name:{width}s} {result}", flush=True)


if __name__ == "__main__":
    main()
