"""Converts the Keras 3 applications no test fixture uses (pre-activation ResNets, scaled
Inception-ResNet residuals, the large MobileNetV3 and NASNet, wider EfficientNets, DenseNet
and ConvNeXt variants; random weights, norm statistics, scales and biases randomised) and
compares each with TensorFlow at two batch sizes: a measure of the general case, not a test.

    .venv/bin/python scripts/sweep_keras_apps.py [--saved] [--out DIR] [MODEL ...]

Prints one line per model: parity (max relative error over outputs and sizes) or the reason
it failed, and the size of the generated model.py (lines, classes).
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TF runs channels-first (NCHW) convolutions on the CPU only through oneDNN, which it turns
# on by itself only on CPUs with AVX-512: on everywhere, so the same models build anywhere.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# name → (keras.applications constructor, input size, extra arguments); the smallest input
# each accepts keeps the sweep fast.
MODELS = {
    "resnet101": ("ResNet101", 64, {}),
    "resnet50_v2": ("ResNet50V2", 64, {}),
    "resnet152_v2": ("ResNet152V2", 64, {}),
    "inception_resnet_v2": ("InceptionResNetV2", 75, {}),
    "mobilenet_v3_large": ("MobileNetV3Large", 64, {"alpha": 0.75}),
    "mobilenet_v3_large_min": ("MobileNetV3Large", 64, {"minimalistic": True}),
    "efficientnet_b3": ("EfficientNetB3", 64, {}),
    "efficientnet_v2_s": ("EfficientNetV2S", 64, {}),
    "efficientnet_v2_b1": ("EfficientNetV2B1", 64, {}),
    "densenet169": ("DenseNet169", 64, {}),
    "vgg19": ("VGG19", 32, {"classes": 10}),
    "convnext_small": ("ConvNeXtSmall", 64, {}),
    "nasnet_large": ("NASNetLarge", 96, {}),
    "mobilenet_pooled": ("MobileNet", 64, {"include_top": False, "pooling": "max"}),
}


def randomise(model, r):
    import numpy as np

    for v in model.weights:
        if any(k in v.path for k in ("bias", "beta", "moving_mean")):
            v.assign(r.normal(0, 0.1, v.shape).astype(np.float32))
        elif "moving_var" in v.path:
            v.assign(r.uniform(0.5, 1.5, v.shape).astype(np.float32))
        elif "gamma" in v.path:
            # Scales of at most 1: scales up to 1.5 make EfficientNetV2-S's 40 blocks grow
            # float32 rounding a millionfold (TF's own float32 and float64 outputs differ
            # by 0.55), which no translation can match.
            v.assign(r.uniform(0.5, 1.0, v.shape).astype(np.float32))


def sweep(name, out_dir):
    import keras
    import numpy as np
    from sweep import sweep_image_model

    ctor, size, extra = MODELS[name]
    keras.utils.set_random_seed(1)
    if extra.get("include_top", True):
        extra = {"classifier_activation": None, **extra}  # logits: softmax hides errors
    model = getattr(keras.applications, ctor)(
        weights=None, input_shape=(size, size, 3), **extra
    )
    randomise(model, np.random.RandomState(3))
    return sweep_image_model(out_dir, name, model, size)


def main():
    from sweep import cli

    cli(__doc__, sweep, list(MODELS), "sweep_keras_apps", 24)


if __name__ == "__main__":
    main()
