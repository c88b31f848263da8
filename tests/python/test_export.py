"""The generated modules stay capturable whole: `torch.export.export` with the batch
dimension dynamic (as TF's is), and `torch.compile(fullgraph=True)` (Dynamo's capture, with
the eager backend: no code generation, so it stays quick). BERT exercises the fused
attention and the `nn.ModuleList` loop, ResNet50 the block stacks. The exported program must
still match TensorFlow on the fixture's inputs."""

import numpy as np
import pytest
import torch
from conftest import TOLERANCE, generated, import_model, rel_error, run_cli

MODELS = ["keras_hub_bert_small", "keras_resnet50", "keras_mobilenet_v2", "keras_convnext_tiny"]


def converted(name, tmp_path):
    out = tmp_path / "out"
    run_cli("convert", generated(f"{name}.pb"), "-o", out)
    model = import_model(out).load_model()
    ref = np.load(generated(f"{name}.npz"))
    n_in = len([k for k in ref if k.startswith("input_")])
    inputs = tuple(torch.from_numpy(ref[f"input_{i}"]) for i in range(n_in))
    wants = [ref[k] for k in sorted(k for k in ref if k.startswith("output_"))]
    return model, inputs, wants


def check(got, wants):
    got = got if isinstance(got, tuple) else (got,)
    for g, w in zip(got, wants):
        assert rel_error(g.detach().numpy(), w) <= TOLERANCE


@pytest.mark.parametrize("name", MODELS)
def test_export_with_a_dynamic_batch(name, tmp_path):
    model, inputs, wants = converted(name, tmp_path)
    batch = torch.export.Dim("batch", min=1, max=64)
    shapes = tuple({0: batch} for _ in inputs)
    program = torch.export.export(model, inputs, dynamic_shapes=shapes)
    check(program.module()(*inputs), wants)


@pytest.mark.parametrize("name", MODELS)
def test_compile_fullgraph(name, tmp_path):
    model, inputs, wants = converted(name, tmp_path)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        check(compiled(*inputs), wants)
