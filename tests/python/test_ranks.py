"""Layers at every rank: 1-D audio and sequence models and 3-D video and volume models (Keras,
frozen and SavedModel) convert to the torch layer of their rank, read like hand-written code
and match TensorFlow for two batch sizes. Fixtures: tests/fixtures/ranks.py
(make_fixtures.py ranks build/fixtures)."""

import re

import pytest
from conftest import GENERATED_DIR, assert_parity, ruff, run_cli

# What each model's `__init__` must build: the layer of its rank, never a 2-D stand-in.
LAYERS = {
    "audio_kws": ["nn.Conv1d(8, 16, 5, stride=2", "nn.BatchNorm1d(16", "nn.MaxPool1d(2)", "groups=16", "dilation=2"],
    "wavenet": ["dilation=2", "dilation=4"],
    "unet1d": ["nn.ConvTranspose1d(16, 16, 2, stride=2)", "nn.MaxPool1d(2)"],
    "video3d": ["nn.Conv3d(3, 8, 3, padding=1)", "nn.BatchNorm3d(8", "nn.MaxPool3d((1, 2, 2))", "nn.AvgPool3d(2)"],
    "volume_seg": ["nn.Conv3d(2, 8, 3, padding=1)", "nn.MaxPool3d(2)", "nn.ConvTranspose3d(8, 8, 2, stride=2)"],
    "norms1d": ["nn.GroupNorm(4, 16, eps=0.001)", "nn.LayerNorm(16, eps=0.001)"],
    "norms3d": ["nn.GroupNorm(2, 8, eps=0.001)", "nn.GroupNorm(8, 8, eps=0.001)", "repeat_interleave(2, dim=3)"],
}
# LayerNorm over channels runs channels-last (as ConvNeXt's does): a permute either side.
PERMUTES = {"norms1d": 4, "norms3d": 4}
# Never generic machinery where a layer belongs.
FORBIDDEN = ["custom_ops.", "Conv2d", "BatchNorm2d", "MaxPool2d", "unsqueeze", "squeeze(", "space_to", "F.conv", "rsqrt"]


def source(name):
    path = GENERATED_DIR / (name if name.endswith("_saved") else f"{name}.pb")
    if not path.exists():
        pytest.fail(f"{path} missing: run tests/fixtures/make_fixtures.py ranks build/fixtures")
    return path


def module_class(out):
    """The generated `nn.Module` class alone (not the loader below it)."""
    code = (out / "model.py").read_text()
    start = code.index("\nclass ")
    return code[start : code.index("\n\n\n", start)]


@pytest.mark.parametrize("saved", ["", "_saved"])
@pytest.mark.parametrize("model", sorted(LAYERS))
def test_every_rank_converts_to_its_layers_and_matches(model, saved, tmp_path):
    name = model + saved
    out = tmp_path / "out"
    run_cli("convert", source(name), "-o", out, "--strict")
    assert ruff("check", "--no-cache", str(out / "model.py")).returncode == 0
    code = module_class(out)
    for layer in LAYERS[model]:
        assert layer in code, f"{layer!r} missing from {name}:\n{code}"
    for text in FORBIDDEN:
        assert text not in code, f"{text!r} in {name}:\n{code}"
    # One permute in (channels-last to channels-first) and at most one out.
    assert len(re.findall(r"\.permute\(", code)) <= PERMUTES.get(model, 2), code
    for suffix in ("", "_b"):
        assert_parity(out, GENERATED_DIR / f"{name}{suffix}.npz")


def test_upsampling_1d_is_repeat_interleave(tmp_path):
    """UpSampling1D (ExpandDims → Tile → Reshape in TF) is one `repeat_interleave`."""
    out = tmp_path / "out"
    run_cli("convert", source("unet1d"), "-o", out)
    code = module_class(out)
    assert "repeat_interleave(2, dim=2)" in code, code
    assert ".tile(" not in code and ".reshape(" not in code, code
