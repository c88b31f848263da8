"""The generated modules train. Activations after a conv, a norm or an add overwrite their
input (`F.relu(x, inplace=True)`, as torchvision's `nn.ReLU(inplace=True)`), which is only
right where autograd does not need the old value: in train mode, backward through the
module must work and give exactly the gradients of the same module with every activation
out of place."""

import shutil

import numpy as np
import pytest
import torch
from conftest import generated, import_model, run_cli

# plain ReLU (ResNet50), ReLU6 (MobileNetV2), hard swish and squeeze-and-excitation gates
# (MobileNetV3), SiLU (EfficientNet)
MODELS = ["keras_resnet50", "keras_mobilenet_v2", "keras_mobilenet_v3_small", "keras_efficientnet_b0"]


def gradients(out_dir, npz):
    ref = np.load(npz)
    inputs = [torch.from_numpy(ref[k]) for k in sorted(k for k in ref if k.startswith("input_"))]
    model = import_model(out_dir).load_model().train()
    torch.manual_seed(0)  # the same dropout masks in both runs
    outputs = model(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    sum(o.square().mean() for o in outputs).backward()
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", MODELS)
def test_in_place_activations_keep_gradients(name, tmp_path):
    out = tmp_path / "out"
    run_cli("convert", generated(f"{name}.pb"), "-o", out)
    code = (out / "model.py").read_text()
    assert "inplace=True" in code
    out_of_place = tmp_path / "out_of_place"
    shutil.copytree(out, out_of_place)
    (out_of_place / "model.py").write_text(code.replace(", inplace=True", ""))

    npz = generated(f"{name}.npz")
    got, want = gradients(out, npz), gradients(out_of_place, npz)
    assert got.keys() == want.keys() and got
    for key in want:
        assert torch.equal(got[key], want[key]), key
