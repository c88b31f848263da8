"""TF1 models as their authors saved them (tests/fixtures/tf1_models.py): a `simple_save`
SavedModel, a `SavedModelBuilder` export with two MetaGraphs, and a `Saver` checkpoint of the
training graph. Each converts without TensorFlow and matches what the TF session computed;
variables come from the checkpoint by key, training machinery is left out, and a conditional on
an unfed `is_training` placeholder becomes the inference branch."""

import shutil

import numpy as np
import pytest
import torch
from conftest import (
    GENERATED_DIR,
    assert_parity,
    convert_fails,
    generated,
    import_model,
    run_cli,
)


def fixture(name):
    return generated(name, "tests/fixtures/make_fixtures.py tf1 build/fixtures")


fails = convert_fails


def reads_like_the_layers(out):
    """The layers `tf.compat.v1.layers` made, no conditional on the constant `is_training`,
    nothing from the training graph. The temperature the network keeps with
    `trainable=False`, which the MetaGraph's `trainable_variables` collection leaves out, is
    a buffer: the parameters are what TF trains."""
    text = (out / "model.py").read_text()
    assert "self.conv1 = nn.Conv2d(3, 6, 3, padding=1)" in text, text
    assert "self.bn1 = nn.BatchNorm2d(6, eps=0.001)" in text, text
    assert 'self.register_buffer("temperature", torch.empty((), dtype=torch.float32))' in text, text
    for word in ("cond", "is_training", "adam", "gradients", "dropout"):
        assert word not in text.lower(), word
    model = import_model(out).load_model()
    state = model.state_dict()
    assert sorted({k.split(".")[0] for k in state}) == ["bn1", "conv1", "conv2", "logits", "temperature"]
    assert float(state["temperature"]) == pytest.approx(1.7)
    trained = {k.split(".")[0] for k, _ in model.named_parameters()}
    assert sorted(trained) == ["bn1", "conv1", "conv2", "logits"], sorted(trained)


def test_simple_save_parity(tmp_path):
    out = tmp_path / "out"
    run_cli("convert", fixture("tf1_simple_save"), "-o", out, "--strict")
    errors = assert_parity(out, GENERATED_DIR / "tf1_simple_save.npz")
    print(f"tf1_simple_save: max rel. error {max(errors):.3g}")
    reads_like_the_layers(out)


def test_builder_signature_and_resource_variables(tmp_path):
    out = tmp_path / "out"
    run_cli("convert", fixture("tf1_builder"), "-o", out, "--signature", "predict", "--strict")
    errors = assert_parity(out, GENERATED_DIR / "tf1_builder.npz")
    print(f"tf1_builder: max rel. error {max(errors):.3g}")
    reads_like_the_layers(out)


def test_builder_second_meta_graph_by_tags(tmp_path):
    """`--tags train` picks the other MetaGraph; its `logits` signature gives what the
    `predict` signature gives before the softmax."""
    out = tmp_path / "out"
    run_cli("convert", fixture("tf1_builder"), "-o", out, "--tags", "train", "--signature", "logits")
    ref = np.load(GENERATED_DIR / "tf1_builder.npz")
    logits = import_model(out).load_model()(torch.from_numpy(ref["input_0"]))
    probs = torch.softmax(logits, -1).detach().numpy()
    np.testing.assert_allclose(probs, ref["output_0"], rtol=1e-4, atol=1e-6)


def test_unknown_tags_list_the_meta_graphs(tmp_path):
    err = fails(fixture("tf1_builder"), tmp_path, "--tags", "gpu")
    assert "gpu" in err and "serve" in err and "train" in err


@pytest.mark.parametrize("spelling", ["model.ckpt", "model.ckpt.meta", "model.ckpt.index", "."])
def test_checkpoint_parity_whichever_file_is_named(spelling, tmp_path):
    out = tmp_path / "out"
    path = fixture("tf1_checkpoint") / spelling
    run_cli("convert", path, "-o", out, "--outputs", "probs", "--strict", "--class-name", "Net")
    errors = assert_parity(out, GENERATED_DIR / "tf1_checkpoint.npz")
    print(f"tf1_checkpoint ({spelling}): max rel. error {max(errors):.3g}")
    reads_like_the_layers(out)
    assert 'FORMAT = "checkpoint"' in (out / "make_reference.py").read_text()


def test_checkpoint_without_outputs_names_the_candidates(tmp_path):
    """The training graph has no signature: the error (and `inspect`) name the values a user
    can choose, the model's prediction and the loss, with the inputs each reads."""
    err = fails(fixture("tf1_checkpoint") / "model.ckpt", tmp_path)
    assert "--outputs" in err and "probs:0 (reads images)" in err, err
    assert "gradients" not in err and "Adam" not in err
    report = run_cli("inspect", fixture("tf1_checkpoint")).stdout
    assert "probs:0 (reads images)" in report and "(reads images, labels)" in report, report


def test_checkpoint_with_missing_data_file(tmp_path):
    d = tmp_path / "ckpt"
    shutil.copytree(fixture("tf1_checkpoint"), d)
    (d / "model.ckpt.data-00000-of-00001").unlink()
    assert "model.ckpt.data-00000-of-00001" in fails(d / "model.ckpt", tmp_path, "--outputs", "probs")


def test_checkpoint_with_truncated_meta_graph(tmp_path):
    d = tmp_path / "ckpt"
    shutil.copytree(fixture("tf1_checkpoint"), d)
    meta = d / "model.ckpt.meta"
    meta.write_bytes(meta.read_bytes()[:1000])
    assert "model.ckpt.meta" in fails(d / "model.ckpt", tmp_path, "--outputs", "probs")


def test_checkpoint_without_a_value_for_a_variable(tmp_path):
    """The `.index` of another checkpoint: the variable with no value is named."""
    d = tmp_path / "ckpt"
    shutil.copytree(fixture("tf1_checkpoint"), d)
    for f in ("model.ckpt.index", "model.ckpt.data-00000-of-00001"):
        shutil.copy(fixture("sm_module") / "variables" / f.replace("model.ckpt", "variables"), d / f)
    err = fails(d / "model.ckpt", tmp_path, "--outputs", "probs")
    assert "conv1/" in err and "no value" in err, err


def test_is_training_fed_at_run_time(tmp_path):
    """With `is_training` as an input the conditionals stay, as run-time branches; the `If`s of
    a training graph also return gradient intermediates nobody reads, which must not get in the
    way. Inference (`False`) matches TF."""
    out = tmp_path / "out"
    run_cli("convert", fixture("tf1_simple_save"), "-o", out, "--inputs", "images,is_training")
    ref = np.load(GENERATED_DIR / "tf1_simple_save.npz")
    model = import_model(out).load_model()
    logits, probs = model(torch.from_numpy(ref["input_0"]), torch.tensor(False))
    np.testing.assert_allclose(logits.detach().numpy(), ref["output_0"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(probs.detach().numpy(), ref["output_1"], rtol=1e-4, atol=1e-6)


def test_partitioned_variables(tmp_path):
    """An embedding table saved in 3 slices and a dense kernel in 2 (`partitioner=`): each part
    is read from its slice of the checkpoint entry; the partitioned lookup (partition, gather,
    stitch) and the concatenated kernel compute what TF computed."""
    out = tmp_path / "out"
    run_cli("convert", fixture("tf1_partitioned"), "-o", out, "--strict")
    errors = assert_parity(out, GENERATED_DIR / "tf1_partitioned.npz")
    print(f"tf1_partitioned: max rel. error {max(errors):.3g}")
    state = import_model(out).load_model().state_dict()
    # Each slice is a table looked up under TF's own `embedding_lookup` scope: an embedding.
    rows = sorted(v.shape[0] for k, v in state.items() if k.startswith("embedding"))
    assert rows == [3, 4, 4], state.keys()


def test_vocabulary_table_filled_by_the_init_op(tmp_path):
    """A TF1 SavedModel's table is filled by its init op (`tables_initializer`), which the
    signature does not run, with values TF computes (`range(5)`): both are read, the lookup
    is `table_lookup` over the sorted vocabulary, unknown ids go to the default bucket (was:
    two stubs, HashTableV2 and LookupTableFindV2)."""
    out = tmp_path / "out"
    run_cli("convert", fixture("tf1_table"), "-o", out, "--strict")
    assert_parity(out, GENERATED_DIR / "tf1_table.npz")
    code = (out / "model.py").read_text()
    assert "table_lookup(self.hash_table_keys, self.hash_table_values, ids, 5)" in code, code
