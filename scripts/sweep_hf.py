"""Converts Hugging Face transformers' TensorFlow models (tiny configs, random weights, norm
scales and biases randomised) and compares each with TensorFlow at two input sizes: a
measure of the general case, not a test. transformers 4.x is the last with TF models and
is no dependency of the project: install it beside the venv first,

    .venv/bin/pip install --target build/hf transformers==4.46.3 huggingface-hub tokenizers regex
    rm -rf build/hf/numpy* build/hf/packaging*          # keep the venv's own
    .venv/bin/python scripts/sweep_hf.py [--out DIR] [MODEL ...]   # default: every model below

Prints one line per model: parity (max relative error over outputs and sizes) or the reason
it failed, the size of the generated model.py, and its SDPA calls and softmaxes left.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(
    0, os.path.join(ROOT, "build", "hf")
)  # before the venv's newer huggingface_hub
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TF runs channels-first (NCHW) convolutions on the CPU only through oneDNN, which it turns
# on by itself only on CPUs with AVX-512: on everywhere, so the same models build anywhere.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ["TF_USE_LEGACY_KERAS"] = "1"  # transformers' TF models are tf_keras models

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}
SMALL |= {"intermediate_size": 64, "vocab_size": 100, "max_position_embeddings": 64}
CNN = {"hidden_sizes": [8, 16, 32, 64], "depths": [1, 1, 1, 1]}


def models():
    """name → (model class, config class, config, input kind)."""
    import transformers as T

    return {
        "bert": (T.TFBertModel, T.BertConfig, SMALL, "text"),
        "roberta": (T.TFRobertaModel, T.RobertaConfig, SMALL, "text"),
        "electra": (
            T.TFElectraModel,
            T.ElectraConfig,
            SMALL | {"embedding_size": 16},
            "text",
        ),
        "albert": (
            T.TFAlbertModel,
            T.AlbertConfig,
            SMALL | {"embedding_size": 16},
            "text",
        ),
        "deberta_v2": (T.TFDebertaV2Model, T.DebertaV2Config, SMALL, "text"),
        "distilbert": (
            T.TFDistilBertModel,
            T.DistilBertConfig,
            {
                "vocab_size": 100,
                "dim": 32,
                "n_layers": 2,
                "n_heads": 4,
                "hidden_dim": 64,
            },
            "text",
        ),
        "mobilebert": (
            T.TFMobileBertModel,
            T.MobileBertConfig,
            SMALL
            | {
                "embedding_size": 16,
                "intra_bottleneck_size": 16,
                "true_hidden_size": 16,
            },
            "text",
        ),
        "gpt2": (
            T.TFGPT2Model,
            T.GPT2Config,
            {
                "vocab_size": 100,
                "n_embd": 32,
                "n_layer": 2,
                "n_head": 4,
                "n_positions": 64,
            },
            "text",
        ),
        "t5_encoder": (
            T.TFT5EncoderModel,
            T.T5Config,
            {
                "vocab_size": 100,
                "d_model": 32,
                "d_kv": 8,
                "d_ff": 64,
                "num_layers": 2,
                "num_heads": 4,
            },
            "text",
        ),
        "xlnet": (
            T.TFXLNetModel,
            T.XLNetConfig,
            {
                "vocab_size": 100,
                "d_model": 32,
                "n_layer": 2,
                "n_head": 4,
                "d_inner": 64,
            },
            "text",
        ),
        "funnel": (
            T.TFFunnelBaseModel,
            T.FunnelConfig,
            {
                "vocab_size": 100,
                "block_sizes": [1, 1],
                "d_model": 32,
                "n_head": 4,
                "d_head": 8,
                "d_inner": 64,
            },
            "text",
        ),
        "clip_text": (
            T.TFCLIPTextModel,
            T.CLIPTextConfig,
            {k: v for k, v in SMALL.items()},
            "text",
        ),
        "vit": (
            T.TFViTModel,
            T.ViTConfig,
            {k: v for k, v in SMALL.items() if k != "vocab_size"}
            | {"image_size": 32, "patch_size": 8},
            "image",
        ),
        "convnext": (
            T.TFConvNextModel,
            T.ConvNextConfig,
            CNN | {"image_size": 32},
            "image",
        ),
        "resnet": (
            T.TFResNetModel,
            T.ResNetConfig,
            CNN | {"embedding_size": 8},
            "image",
        ),
        "segformer": (
            T.TFSegformerModel,
            T.SegformerConfig,
            CNN | {"num_attention_heads": [1, 2, 2, 4], "decoder_hidden_size": 32},
            "image",
        ),
        "swin": (
            T.TFSwinModel,
            T.SwinConfig,
            {
                "image_size": 32,
                "patch_size": 4,
                "embed_dim": 16,
                "depths": [1, 1],
                "num_heads": [2, 2],
                "window_size": 4,
            },
            "image",
        ),
    }


def feeds(kind, r):
    """Two feeds (other sizes; text with padding at the end of one row)."""
    import numpy as np

    if kind == "image":
        return [
            {"pixel_values": r.randn(b, 3, 32, 32).astype(np.float32)} for b in (2, 1)
        ]
    out = []
    for b, t in ((2, 9), (3, 6)):
        ids = r.randint(1, 90, (b, t)).astype(np.int32)
        mask = np.ones((b, t), np.int32)
        mask[-1, t - 3 :] = 0
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def sweep(name, out_dir):
    import general
    import numpy as np
    import tensorflow as tf

    cls, config_cls, config, kind = models()[name]
    model = cls(config_cls(**config))
    r = np.random.RandomState(7)
    two = feeds(kind, r)
    model(**two[0])
    for w in model.weights:
        if any(p in w.name for p in ("bias", "beta", "gamma")):
            offset = 1.0 if "gamma" in w.name else 0.0
            w.assign(r.normal(0, 0.2, w.shape).astype(np.float32) + offset)
    keys = list(two[0])
    specs = [
        general.spec(None, *v.shape[1:-1], None, dtype=tf.as_dtype(v.dtype), name=k)
        if kind == "text"
        else general.spec(None, *v.shape[1:], dtype=tf.as_dtype(v.dtype), name=k)
        for k, v in two[0].items()
    ]

    def fn(*args):
        out = model(**dict(zip(keys, args)), training=False)
        return [v for v in out.values() if v is not None and not isinstance(v, tuple)]

    general.frozen(out_dir, name, fn, specs, [[f[k] for k in keys] for f in two])
    from sweep import convert_and_compare, verdict

    result = convert_and_compare(out_dir, name, keys)
    if isinstance(result, str):
        return result
    error, code = result
    sdpa, softmax = (
        code.count("scaled_dot_product_attention("),
        code.count("F.softmax("),
    )
    return f"{verdict(error)}  ({code.count(chr(10))} lines, {sdpa} SDPA, {softmax} softmax)"


def main():
    from sweep import cli

    cli(__doc__, sweep, list(models()), "sweep_hf", 12)


if __name__ == "__main__":
    main()
