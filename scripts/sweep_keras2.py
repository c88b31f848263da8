"""Converts Keras 2 (tf_keras) applications, as TF 2.x models before Keras 3 were saved
(random weights, norm statistics, scales and biases randomised), and compares each with
TensorFlow at two batch sizes: a measure of the general case, not a test. Keras 2 writes
its graphs otherwise than Keras 3 (fused batch norms, `tf.__operators__.add` op layers,
`model/` scopes) and has architectures Keras 3 dropped (RegNet, ResNet-RS).

    .venv/bin/python scripts/sweep_keras2.py [--out DIR] [MODEL ...]   # default: all below

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
os.environ["TF_USE_LEGACY_KERAS"] = "1"

# name → (tf_keras.applications constructor, input size, extra arguments)
MODELS = {
    "resnet50": ("ResNet50", 64, {}),
    "mobilenet": ("MobileNet", 64, {"alpha": 0.25}),
    "mobilenet_v2": ("MobileNetV2", 64, {"alpha": 0.35}),
    "mobilenet_v3_small": ("MobileNetV3Small", 64, {}),
    "efficientnet_b0": ("EfficientNetB0", 64, {}),
    "efficientnet_v2_b0": ("EfficientNetV2B0", 64, {}),
    "regnetx002": ("RegNetX002", 64, {}),
    "regnety002": ("RegNetY002", 64, {}),
    "resnetrs50": ("ResNetRS50", 64, {}),
    "nasnet_mobile": ("NASNetMobile", 96, {}),
    "inception_v3": ("InceptionV3", 96, {}),
    "densenet121": ("DenseNet121", 64, {}),
    "xception": ("Xception", 71, {}),
    "convnext_tiny": ("ConvNeXtTiny", 64, {}),
    "vgg16": ("VGG16", 32, {"classes": 10}),
}


def randomise(model, r):
    import numpy as np

    for w in model.weights:
        shape, name = w.shape, w.name
        if "moving_variance" in name or "gamma" in name:
            w.assign(r.uniform(0.5, 1.5, shape).astype(np.float32))
        elif any(k in name for k in ("moving_mean", "beta", "bias")):
            w.assign(r.uniform(-0.2, 0.2, shape).astype(np.float32))


def sweep(name, out_dir):
    import numpy as np
    import tf_keras
    from sweep import sweep_image_model

    ctor, size, extra = MODELS[name]
    tf_keras.utils.set_random_seed(1)
    model = getattr(tf_keras.applications, ctor)(
        weights=None,
        input_shape=(size, size, 3),
        classifier_activation=None,  # logits: a saturated softmax would hide errors
        **extra,
    )
    randomise(model, np.random.RandomState(3))
    return sweep_image_model(out_dir, name, model, size)


def main():
    from sweep import cli

    cli(__doc__, sweep, list(MODELS), "sweep_keras2", 20)


if __name__ == "__main__":
    main()
