"""Weights above `--max-shard-size` are written the way Hugging Face shards them:
`model-0000k-of-0000n.safetensors` plus `model.safetensors.index.json` (`weight_map`,
`metadata.total_size`); the generated `load_model()` reads the shards, the model still matches
TensorFlow, and a later conversion into the same folder leaves no stale shards behind."""

import json

import pytest
from conftest import GENERATED_DIR, ROOT, assert_parity, import_model, run_cli

MODEL = "keras_mobilenet_v2"


def fixture():
    path = GENERATED_DIR / f"{MODEL}.pb"
    if not path.exists():
        pytest.fail(f"{path} missing: run tests/fixtures/make_fixtures.py keras build/fixtures")
    return path


def shards(out):
    return sorted(p.name for p in out.glob("model-*-of-*.safetensors"))


def test_sharded_round_trip(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("convert", fixture(), "-o", out, "--max-shard-size", "4MB")
    names = shards(out)
    assert len(names) == 5 and names[0] == "model-00001-of-00005.safetensors", names
    assert not (out / "model.safetensors").exists()
    assert "weights in 5 shards" in proc.stdout
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == names
    # Every tensor under the limit shares a shard within it; the 5 MB classifier stands alone.
    sizes = {n: (out / n).stat().st_size for n in names}
    assert sum(s > 4_000_000 for s in sizes.values()) == 1, sizes
    state = import_model(out).load_model().state_dict()
    assert set(index["weight_map"]) == set(state)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in state.values())
    errors = assert_parity(out, GENERATED_DIR / f"{MODEL}.npz")
    print(f"{MODEL} in {len(names)} shards: max rel. error {max(errors):.3g}")

    # Converting again without sharding replaces the shards with one file.
    run_cli("convert", fixture(), "-o", out)
    assert shards(out) == [] and not (out / "model.safetensors.index.json").exists()
    assert (out / "model.safetensors").exists()
    assert "index.json" not in (out / "model.py").read_text()
    assert_parity(out, GENERATED_DIR / f"{MODEL}.npz")


def test_shards_load_with_the_safetensors_package(tmp_path):
    """What the Hugging Face stack reads: each shard is a plain safetensors file."""
    safetensors_torch = pytest.importorskip("safetensors.torch")
    out = tmp_path / "out"
    run_cli("convert", fixture(), "-o", out, "--max-shard-size", "6MiB")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    loaded = {}
    for name in sorted(set(index["weight_map"].values())):
        loaded.update(safetensors_torch.load_file(out / name))
    assert set(loaded) == set(index["weight_map"])


@pytest.mark.parametrize("size", ["0", "5XB", "-1GB", "lots"])
def test_bad_shard_sizes(size, tmp_path):
    proc = run_cli("convert", fixture(), "-o", tmp_path / "out", f"--max-shard-size={size}", check=False)
    assert proc.returncode == 2 and "max-shard-size" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_weights_load_with_or_without_the_safetensors_package(tmp_path, monkeypatch):
    """`load_model` reads with `safetensors.torch.load_file` when the package is there and
    with torch alone (the file mapped, tensors as views) when it is not: the same weights,
    and TF's outputs either way."""
    import sys

    import torch

    out = tmp_path / "out"
    run_cli("convert", ROOT / "samples" / "small_cnn.pb", "-o", out)
    code = (out / "model.py").read_text()
    assert "from safetensors.torch import load_file" in code and "bytearray" not in code
    module = import_model(out)
    with_package = module.load_model().state_dict()
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(ImportError):
        import safetensors.torch  # noqa: F401
    without = module.load_model().state_dict()
    assert with_package.keys() == without.keys()
    assert all(torch.equal(with_package[k], without[k]) for k in with_package)
    assert_parity(out, ROOT / "samples" / "small_cnn.npz")
