"""The generated modules stay capturable whole: `torch.export.export` with the batch
dimension dynamic (as TF's is), and `torch.compile(fullgraph=True)` (Dynamo's capture, with
the eager backend: no code generation, so it stays quick). BERT exercises the fused
attention and the `nn.ModuleList` loop, ResNet50 the block stacks. What they capture must
still match TensorFlow on the fixture's inputs. Each check runs in a fresh interpreter
(export_check.py says why)."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import generated, run_cli

MODELS = ["keras_hub_bert_small", "keras_resnet50", "keras_mobilenet_v2", "keras_convnext_tiny"]
HERE = Path(__file__).parent


@pytest.mark.parametrize("mode", ["export", "compile"])
@pytest.mark.parametrize("name", MODELS)
def test_captured_whole(name, mode, tmp_path):
    out = tmp_path / "out"
    run_cli("convert", generated(f"{name}.pb"), "-o", out)
    script = [sys.executable, str(HERE / "export_check.py"), str(out), str(generated(f"{name}.npz")), mode]
    proc = subprocess.run(script, capture_output=True, text=True, cwd=HERE, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
