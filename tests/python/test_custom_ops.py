"""custom_ops.py belongs to the user: regenerating never rebinds one of their functions to
another op, never shadows what they bound, and refuses a file Python could not import.

The graphs hold ops TensorFlow does not have (that is what stubs are for), so the expected
outputs follow from the implementations the tests write, computed with numpy."""

import re

import numpy as np
import pytest
import torch
from conftest import import_model, run_cli

tf = pytest.importorskip("tensorflow")
from tensorflow.core.framework import graph_pb2, types_pb2


def chain_file(tmp_path, name, ops):
    """x (float [2, 3]) through the custom `ops` in turn."""
    g = graph_pb2.GraphDef()
    x = g.node.add()
    x.name, x.op = "x", "Placeholder"
    x.attr["dtype"].type = types_pb2.DT_FLOAT
    for d in (2, 3):
        x.attr["shape"].shape.dim.add().size = d
    prev = "x"
    for i, op in enumerate(ops):
        node = g.node.add()
        node.name, node.op = f"step{i}", op
        node.input.append(prev)
        node.attr["T"].type = types_pb2.DT_FLOAT
        prev = node.name
    path = tmp_path / f"{name}.pb"
    path.write_bytes(g.SerializeToString())
    return path


def implement(text, function, body):
    """The stub `function` in `text` with its `raise` replaced by `body`."""
    pattern = rf"(def {function}\(.*?\n)    raise NotImplementedError\((?:[^\n]*\)|\n.*?\n    \))\n"
    new, count = re.subn(pattern, lambda m: m.group(1) + f"    return {body}\n", text, flags=re.S)
    assert count == 1, f"no stub {function} in:\n{text}"
    return new


def run(out, x):
    with torch.no_grad():
        return import_model(out).load_model()(torch.from_numpy(x)).numpy()


X = np.arange(6, dtype=np.float32).reshape(2, 3)


def test_functions_keep_their_ops_across_regenerations(tmp_path):
    """`MyOp` and `My_Op` both want the name `my_op`; the second gets `my_op_2`. A later model
    with only `My_Op` still calls `my_op_2`, the user's implementation of that op, and a new op
    that would be `my_op` again gets a name of its own."""
    out = tmp_path / "out"
    run_cli("convert", chain_file(tmp_path, "both", ["MyOp", "My_Op"]), "-o", out)
    text = (out / "custom_ops.py").read_text()
    assert "def my_op(" in text and "def my_op_2(" in text
    filled = implement(implement(text, "my_op", "input_0 + 1"), "my_op_2", "input_0 * 2")
    (out / "custom_ops.py").write_text(filled)
    np.testing.assert_allclose(run(out, X), (X + 1) * 2)

    proc = run_cli("convert", chain_file(tmp_path, "second", ["My_Op"]), "-o", out)
    assert (out / "custom_ops.py").read_text() == filled
    assert "custom_ops.my_op_2(" in (out / "model.py").read_text()
    np.testing.assert_allclose(run(out, X), X * 2)
    assert "custom_ops.my_op() is no longer used" in proc.stdout

    run_cli("convert", chain_file(tmp_path, "third", ["MY_OP"]), "-o", out)
    text = (out / "custom_ops.py").read_text()
    assert text.startswith(filled) and "def my_op_3(" in text
    assert "custom_ops.my_op_3(" in (out / "model.py").read_text()


def test_a_stub_replaced_by_any_binding_counts_as_implemented(tmp_path):
    """The user replaced the stub by an assignment (an import or a class would do too):
    regenerating appends no second `strange_op` that would shadow theirs."""
    out = tmp_path / "out"
    model = chain_file(tmp_path, "strange", ["StrangeOp"])
    run_cli("convert", model, "-o", out)
    text = (out / "custom_ops.py").read_text()
    start = text.index("def strange_op(")
    mine = text[:start] + "def _double(input_0, **attrs):\n    return input_0 * 2\n\n\nstrange_op = _double\n"
    (out / "custom_ops.py").write_text(mine)
    run_cli("convert", model, "-o", out)
    assert (out / "custom_ops.py").read_text() == mine
    np.testing.assert_allclose(run(out, X), X * 2)


def test_a_custom_ops_file_that_does_not_parse_is_refused(tmp_path):
    """Appending to a file Python cannot import would hide the real problem: the conversion
    stops, names the line, and leaves every file as it was."""
    out = tmp_path / "out"
    model = chain_file(tmp_path, "strange", ["StrangeOp"])
    run_cli("convert", model, "-o", out)
    broken = "import torch\n\ndef strange_op(input_0:\n    return input_0\n"
    (out / "custom_ops.py").write_text(broken)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = run_cli("convert", model, "-o", out, check=False)
    assert proc.returncode == 1, proc.stderr
    assert re.search(r"custom_ops\.py:4: does not parse", proc.stderr), proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
