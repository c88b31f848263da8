"""Text-format models: a frozen GraphDef written by `tf.io.write_graph(..., as_text=True)`, a TF1
`SavedModelBuilder.save(as_text=True)` export and a Keras SavedModel as `saved_model.pbtxt`;
each matches TensorFlow's outputs. Broken or hostile text gets a clear error, never a crash."""

import shutil

import pytest
from conftest import GENERATED_DIR, assert_parity, convert_fails, generated, run_cli


def fixture(name):
    return generated(name, "tests/fixtures/make_fixtures.py tf1 sm_keras_export build/fixtures")


fails = convert_fails


@pytest.mark.parametrize(
    "name, npz, extra",
    [
        ("tf1_text_graph.pbtxt", "tf1_text_graph", []),
        ("tf1_builder_text", "tf1_builder", ["--signature", "predict"]),
        ("sm_keras_export_text", "sm_keras_export", []),
    ],
)
def test_text_format_parity(name, npz, extra, tmp_path):
    out = tmp_path / "out"
    run_cli("convert", fixture(name), "-o", out, "--strict", *extra)
    errors = assert_parity(out, GENERATED_DIR / f"{npz}.npz")
    print(f"{name}: max rel. error {max(errors):.3g}")


def test_text_graph_under_a_binary_name(tmp_path):
    """`graph.pb` that holds text is read as text."""
    model = tmp_path / "graph.pb"
    shutil.copy(fixture("tf1_text_graph.pbtxt"), model)
    out = tmp_path / "out"
    run_cli("convert", model, "-o", out)
    assert_parity(out, GENERATED_DIR / "tf1_text_graph.npz")


@pytest.mark.parametrize(
    "text, expected",
    [
        ('node { name: "x" op: "Placeholder" }\nnode { nme: "y" }\n', "nme"),
        ('node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_NOPE } } }', "DT_NOPE"),
        ("node { " * 5000, "nest"),
        ('node { name: "x\\', "text-format"),
        ("\xff\xfe", "UTF-8"),
    ],
)
def test_broken_text_graphs(text, expected, tmp_path):
    model = tmp_path / "bad.pbtxt"
    model.write_bytes(text.encode("latin-1") if text.startswith("\xff") else text.encode())
    err = fails(model, tmp_path)
    assert "bad.pbtxt" in err and expected in err, err


def test_broken_text_saved_model(tmp_path):
    d = tmp_path / "sm"
    shutil.copytree(fixture("sm_keras_export_text"), d)
    (d / "saved_model.pbtxt").write_text("meta_graphs { graph_def { node { name: 3 } } }")
    err = fails(d, tmp_path)
    assert "saved_model.pbtxt" in err, err
