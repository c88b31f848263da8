"""TF2 SavedModels written by TensorFlow and Keras 3, converted without TensorFlow, compared
with TensorFlow's outputs; and bad SavedModels, each refused with a clear error."""

import re
import shutil

import pytest
from conftest import GENERATED_DIR, assert_parity, convert_fails, import_model, ruff, run_cli


def forward_params(out):
    """`forward`'s parameter names, in order, read from the generated module."""
    import inspect

    return list(inspect.signature(import_model(out).load_model().forward).parameters)

SAVED = ["sm_module", "sm_shared_variable", "sm_sharded", "sm_no_variables", "sm_keras_export", "sm_export_archive"]
KERAS = ["keras_mobilenet_v2", "keras_resnet50", "keras_efficientnet_b0", "keras_inception_v3", "keras_densenet121"]


def fixture(name):
    path = GENERATED_DIR / name
    if not path.exists():
        pytest.fail(f"{path} missing: run tests/fixtures/make_fixtures.py saved keras build/fixtures")
    return path


@pytest.mark.parametrize("name", SAVED)
def test_saved_model_parity(name, tmp_path):
    out = tmp_path / "out"
    run_cli("convert", fixture(name), "-o", out)
    errors = assert_parity(out, GENERATED_DIR / f"{name}.npz")
    print(f"{name}: max rel. error {max(errors):.3g}")


@pytest.mark.parametrize("seq", [7, 16])
def test_bert_saved_model_with_dynamic_batch_and_length(seq, tmp_path):
    """keras-hub BERT exported by Keras: Einsum projections, a Slice of the position table to
    the run-time sequence length, BroadcastTo the run-time batch: one conversion, correct
    for every input size."""
    out = tmp_path / "out"
    run_cli("convert", fixture("sm_bert_dynamic"), "-o", out, "--strict")
    assert forward_params(out) == ["padding_mask", "segment_ids", "token_ids"]
    assert_parity(out, GENERATED_DIR / f"sm_bert_dynamic_{seq}.npz")


@pytest.mark.parametrize("name", ["sm_lookup_keras", "sm_lookup_table"])
def test_lookup_tables_are_read_from_their_initializers(name, tmp_path):
    """A SavedModel's static hash table (Keras' `IntegerLookup`, `tf.lookup.StaticHashTable`)
    is filled by an initializer the signature does not call: its keys and values are read
    from there into two buffers per table, however often it is looked up in, and the lookup
    is translated (was: 'captured input hash_table is neither a variable nor a constant')."""
    out = tmp_path / "out"
    run_cli("convert", fixture(name), "-o", out, "--strict")
    assert_parity(out, GENERATED_DIR / f"{name}.npz")
    code = (out / "model.py").read_text()
    tables = {"sm_lookup_keras": ["id_lookup", "kind_lookup", "id_back"], "sm_lookup_table": ["lookup"]}[name]
    for t in tables:
        assert f'"{t}_keys"' in code and f'"{t}_values"' in code, code
    assert code.count('_keys"') == len(tables), code
    assert code.count("= table_lookup(") == {"sm_lookup_keras": 3, "sm_lookup_table": 2}[name], code
    assert ruff("check", "--no-cache", str(out / "model.py")).returncode == 0


def test_a_string_lookup_says_where_to_cut_and_the_cut_model_matches(tmp_path):
    """PyTorch has no strings: a `StringLookup`'s lookup is a stub whose reason names the
    `--inputs` to convert from the ids instead; so converted, `forward` takes the ids (int64,
    named after the lookup, not its 100-character TF name) and matches TF on the ids TF's own
    lookup gave."""
    out = tmp_path / "out"
    proc = run_cli("convert", fixture("sm_string_lookup"), "-o", out)
    assert "string keys: PyTorch has no string tensors" in proc.stdout, proc.stdout
    cut = proc.stdout.split("--inputs ")[1].split(")")[0]
    assert cut.endswith("LookupTableFindV2"), cut
    run_cli("convert", fixture("sm_string_lookup"), "-o", out, "--inputs", cut, "--strict")
    assert forward_params(out) == ["vocab"], forward_params(out)
    assert_parity(out, GENERATED_DIR / "sm_string_lookup.npz")


def test_frozen_graph_with_function_library(tmp_path):
    out = tmp_path / "out"
    run_cli("convert", fixture("frozen_with_function.pb"), "-o", out)
    assert_parity(out, GENERATED_DIR / "frozen_with_function.npz")


def test_blocks_take_the_unnamed_layers_that_feed_them(tmp_path):
    """InceptionV3 names only each block's concat (`mixed4`); its branches are Keras'
    `conv2d_34`, `batch_normalization_34`, `activation_34`, read by nothing else. They belong
    to the block, so the four 17x17 blocks are one class (parity is the Keras test)."""
    out = tmp_path / "out"
    run_cli("convert", fixture("keras_inception_v3.pb"), "-o", out)
    code = (out / "model.py").read_text()
    assert "class MixedB(nn.Module):" in code, code
    assert "nn.ModuleList([MixedB(160) for _ in range(2)])" in code, code


def test_a_variable_two_layers_read_is_one_layer(tmp_path):
    """The function called twice reads one variable: one `nn.Linear` called twice, so the
    weights stay tied when the module is trained, and stored once (parity above)."""
    out = tmp_path / "out"
    run_cli("convert", fixture("frozen_with_function.pb"), "-o", out)
    code = (out / "model.py").read_text()
    assert code.count("nn.Linear(4, 4, bias=False)") == 1, code
    layer = code.split("self.")[1].split(" = nn.Linear")[0]
    assert code.count(f"self.{layer}(") == 2, code


def test_signature_keys_are_forward_parameters(tmp_path):
    out = tmp_path / "out"
    run_cli("convert", fixture("sm_export_archive"), "-o", out)
    # The serving function's positional order, not the sorted keys.
    assert forward_params(out) == ["features", "extra"]


def test_saved_model_pb_path_works_too(tmp_path):
    out = tmp_path / "out"
    run_cli("convert", fixture("sm_module") / "saved_model.pb", "-o", out)
    assert_parity(out, GENERATED_DIR / "sm_module.npz")


def model_class(out, param="inputs"):
    """The code of class `Net` in `out/model.py`, its input parameter `param` (and names made
    from it) called `inputs`, and the docstring's note of inputs TF names otherwise left out."""
    body = (out / "model.py").read_text().split("class Net", 1)[1]
    body = re.sub(r"\n\n        Inputs named otherwise in TensorFlow:\n\n(        - .*\n)+", "\n", body)
    return re.sub(rf"\b{param}", "inputs", body)


def assert_saved_reads_as_frozen(name, tmp_path):
    """`name`'s SavedModel written by Keras 3's `model.export` converts to the code its frozen
    graph does, but for the input: `inputs` for Keras' `keras_tensor_N` (said in the
    docstring), where the frozen graph's is `images`."""
    saved, frozen = tmp_path / "saved", tmp_path / "frozen"
    run_cli("convert", fixture(name + "_saved"), "-o", saved, "--class-name", "Net", "--strict")
    run_cli("convert", fixture(name + ".pb"), "-o", frozen, "--class-name", "Net", "--strict")
    errors = assert_parity(saved, GENERATED_DIR / f"{name}.npz")
    print(f"{name} (SavedModel): max rel. error {max(errors):.3g}")
    assert forward_params(saved) == ["inputs"]
    assert "- `keras_tensor_" in (saved / "model.py").read_text()
    assert model_class(saved) == model_class(frozen, "images")
    return saved


@pytest.mark.parametrize("name", KERAS)
def test_keras_application_saved_model_matches_frozen(name, tmp_path):
    assert_saved_reads_as_frozen(name, tmp_path)


def test_a_keras_export_names_layers_as_its_frozen_graph(tmp_path):
    """Keras 3's SavedModel names its variables by Keras' paths, which are not its ops'
    scopes: a nested model's layers without the model (`stem_conv/kernel` under
    `functional_3/stem_conv_1`), a counted layer without the call number its ops carry
    (`scale_1/gamma` under `scale_1_1`). Each variable is named after the op reading it, as
    the frozen graph names it: no `functional_stem_conv`, and `scale_1` stays itself."""
    saved = assert_saved_reads_as_frozen("keras_nested_backbone", tmp_path)
    assert_parity(saved, GENERATED_DIR / "keras_nested_backbone_saved_b.npz")
    src = (saved / "model.py").read_text()
    for layer in ("self.stem_conv = nn.Conv2d(", "x = x * self.scale\n", "x = x * self.scale_1\n"):
        assert layer in src, src


def test_inspect_lists_signatures():
    proc = run_cli("inspect", fixture("sm_export_archive"))
    assert "serving_default(extra, features) -> (output_0, output_1)" in proc.stdout
    assert "serve(" in proc.stdout


def copy(name, tmp_path):
    dst = tmp_path / name
    shutil.copytree(fixture(name), dst)
    return dst


fails = convert_fails


def test_unknown_signature_lists_the_available_ones(tmp_path):
    err = fails(fixture("sm_export_archive"), tmp_path, "--signature", "nope")
    assert "nope" in err and "serving_default(extra, features)" in err


def test_directory_without_saved_model_pb(tmp_path):
    d = copy("sm_module", tmp_path)
    (d / "saved_model.pb").unlink()
    assert "saved_model.pb" in fails(d, tmp_path)


def test_chunked_saved_model_is_named(tmp_path):
    d = copy("sm_module", tmp_path)
    (d / "saved_model.pb").rename(d / "saved_model.cpb")
    assert "chunked" in fails(d, tmp_path)


def test_missing_variables_file(tmp_path):
    d = copy("sm_keras_export", tmp_path)
    (d / "variables" / "variables.data-00000-of-00001").unlink()
    assert "variables.data-00000-of-00001" in fails(d, tmp_path)


def test_truncated_variables_file(tmp_path):
    d = copy("sm_keras_export", tmp_path)
    data = d / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:200])
    err = fails(d, tmp_path)
    assert "variables.index" in err and ("truncated" in err or "checksum" in err)


def test_corrupted_variable_is_a_checksum_error(tmp_path):
    d = copy("sm_keras_export", tmp_path)
    data = d / "variables" / "variables.data-00000-of-00001"
    b = bytearray(data.read_bytes())
    b[10] ^= 0xFF
    data.write_bytes(bytes(b))
    err = fails(d, tmp_path)
    assert "checksum" in err and "/.ATTRIBUTES/VARIABLE_VALUE" in err


def test_corrupted_index_is_a_checksum_error(tmp_path):
    d = copy("sm_keras_export", tmp_path)
    index = d / "variables" / "variables.index"
    b = bytearray(index.read_bytes())
    b[20] ^= 0xFF
    index.write_bytes(bytes(b))
    assert "checksum" in fails(d, tmp_path)


def test_key_named_by_the_object_graph_but_missing_from_the_index(tmp_path):
    # Made by TensorFlow's SaveV2 without one variable the object graph names.
    dropped = (GENERATED_DIR / "sm_missing_key.dropped").read_text().split()
    err = fails(fixture("sm_missing_key"), tmp_path)
    assert any(k in err for k in dropped) and "variables.index" in err and "no such key" in err


def test_checkpoint_of_another_model(tmp_path):
    d = copy("sm_keras_export", tmp_path)
    for f in (fixture("sm_module") / "variables").iterdir():
        shutil.copy(f, d / "variables" / f.name)
    err = fails(d, tmp_path)
    assert "has no value in the checkpoint" in err


def test_regenerating_into_the_same_folder_is_stable(tmp_path):
    out = tmp_path / "out"
    run_cli("convert", fixture("sm_keras_export"), "-o", out)
    first = (out / "model.py").read_bytes(), (out / "model.safetensors").read_bytes()
    run_cli("convert", fixture("sm_keras_export"), "-o", out)
    assert first == ((out / "model.py").read_bytes(), (out / "model.safetensors").read_bytes())
    import_model(out).load_model()


def test_hostile_saved_model_bytes_never_panic(tmp_path):
    d = copy("sm_keras_export", tmp_path)
    pb = d / "saved_model.pb"
    original = pb.read_bytes()
    step = max(1, len(original) // 60)
    for i in range(0, len(original), step):
        b = bytearray(original)
        b[i] ^= 0xA5
        pb.write_bytes(bytes(b))
        proc = run_cli("convert", d, "-o", tmp_path / f"o{i}", check=False)
        assert "panicked" not in proc.stderr, (i, proc.stderr)
        assert proc.returncode in (0, 1), (i, proc.returncode, proc.stderr)


def test_inputs_keep_their_signature_keys(tmp_path):
    """`forward`'s parameters are the signature's keys, callable by keyword: the generated
    code's own names yield (`x` is read twice, so the chain runs through `h`), a builtin such as
    `input` or `list` is a fine parameter name, and only `torch`, which `forward` itself needs,
    becomes `torch_`, said in the docstring."""
    import numpy as np
    import torch

    out = tmp_path / "out"
    run_cli("convert", fixture("sm_input_names"), "-o", out, "--strict")
    src = (out / "model.py").read_text()
    assert forward_params(out) == ["x", "input", "torch_", "list"]
    assert "- `torch` is `torch_`" in src
    ref = np.load(GENERATED_DIR / "sm_input_names.npz")
    feeds = {k: torch.from_numpy(ref[f"input_{i}"]) for i, k in enumerate(["x", "input", "torch_", "list"])}
    with torch.no_grad():
        got = import_model(out).load_model()(**feeds).numpy()
    want = ref["output_0"]
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_a_subclassed_keras_model_reads_as_its_code(tmp_path):
    """A subclassed `keras.Model` exported by `model.export`: its input (TF's positional
    `args_0`) is `inputs`, and a weight the model added itself, read by a `mul` of no layer,
    is named as `add_weight` named it, not `mul`; its blocks are one class in a loop."""
    out = tmp_path / "out"
    run_cli("convert", fixture("keras_subclassed_saved"), "-o", out, "--strict")
    for suffix in ("", "_b"):
        assert_parity(out, GENERATED_DIR / f"keras_subclassed_saved{suffix}.npz")
    src = (out / "model.py").read_text()
    assert forward_params(out) == ["inputs"]
    assert "- `args_0` is `inputs`" in src, src
    assert "self.channel_scale = nn.Parameter(" in src and "x = x * self.channel_scale\n" in src, src
    assert "nn.ModuleList([Block() for _ in range(2)])" in src, src
