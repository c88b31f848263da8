"""Hostile and oversized files, built here as GraphDef protos: conversion stays within seconds
and a few hundred MiB, or fails with a clear error; nothing a tiny file declares is expanded
into gigabytes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_parity, binary, run_cli

tf = pytest.importorskip("tensorflow")
from tensorflow.core.framework import graph_pb2, types_pb2

MIB = 1024 * 1024


# Run from a small Python process: a child forked from this one (which holds TensorFlow) would
# count this process's memory in its own peak.
MEASURE = """
import json, resource, subprocess, sys, time
start = time.monotonic()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True, errors="replace")
print(json.dumps([p.returncode, time.monotonic() - start,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, p.stdout + p.stderr]))
"""


def measured(*args):
    """Runs the CLI; returns (returncode, seconds, peak RSS in bytes, stdout + stderr)."""
    cmd = [sys.executable, "-S", "-c", MEASURE, binary(), *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return tuple(json.loads(done.stdout))


def placeholder(g, name="x", dims=(4,)):
    ph = g.node.add()
    ph.name, ph.op = name, "Placeholder"
    ph.attr["dtype"].type = types_pb2.DT_FLOAT
    for d in dims:
        ph.attr["shape"].shape.dim.add().size = d
    return ph


def chain(n, op):
    g = graph_pb2.GraphDef()
    placeholder(g)
    prev = "x"
    for i in range(n):
        node = g.node.add()
        node.name, node.op = f"n{i}", op
        node.input.append(prev)
        node.attr["T"].type = types_pb2.DT_FLOAT
        prev = node.name
    return g


def write(tmp_path, name, g):
    path = tmp_path / name
    path.write_bytes(g.SerializeToString())
    return path


@pytest.mark.parametrize("op", ["Relu", "Identity", "MyUnknownOp"])
def test_a_100k_node_chain_converts_in_seconds(op, tmp_path):
    path = write(tmp_path, f"chain_{op}.pb", chain(100_000, op))
    code, seconds, rss, out = measured("convert", path, "-o", tmp_path / "out")
    print(f"{op} x 100k: {seconds:.2f} s, {rss / MIB:.0f} MiB")
    assert code == 0, out
    assert seconds < 20, f"{seconds:.1f} s"
    assert rss < 600 * MIB, f"{rss / MIB:.0f} MiB"


def call_bomb(levels):
    """A function library where each level calls the next twice: 2^levels nodes inlined."""
    g = graph_pb2.GraphDef()
    placeholder(g)
    for i in range(levels):
        f = g.library.function.add()
        f.signature.name = f"f{i}"
        a = f.signature.input_arg.add()
        a.name, a.type = "x", types_pb2.DT_FLOAT
        o = f.signature.output_arg.add()
        o.name, o.type = "y", types_pb2.DT_FLOAT
        if i == levels - 1:
            n = f.node_def.add()
            n.name, n.op = "id", "Identity"
            n.input.append("x")
            n.attr["T"].type = types_pb2.DT_FLOAT
            f.ret["y"] = "id:output:0"
        else:
            for name, src in (("a", "x"), ("b", "a:y:0")):
                n = f.node_def.add()
                n.name, n.op = name, f"f{i + 1}"
                n.input.append(src)
            f.ret["y"] = "b:y:0"
    call = g.node.add()
    call.name, call.op = "y", "f0"
    call.input.append("x")
    return g


def test_a_function_call_bomb_fails_within_seconds(tmp_path):
    path = write(tmp_path, "bomb.pb", call_bomb(40))
    assert path.stat().st_size < 4096
    code, seconds, rss, out = measured("convert", path, "-o", tmp_path / "out")
    assert code == 1, out
    assert "multiplies itself" in out and "'y' (f0)" in out, out
    assert seconds < 5 and rss < 300 * MIB, (seconds, rss / MIB)
    assert not (tmp_path / "out").exists()
    # The same library a few levels deep is an ordinary model.
    run_cli("convert", write(tmp_path, "calls.pb", call_bomb(6)), "-o", tmp_path / "ok")


def splat_graph(n, value=1.5):
    """`y = x + c` where the constant `c` of n elements is stored as one float value."""
    g = graph_pb2.GraphDef()
    placeholder(g, dims=(1,))
    c = g.node.add()
    c.name, c.op = "c", "Const"
    c.attr["dtype"].type = types_pb2.DT_FLOAT
    t = c.attr["value"].tensor
    t.dtype = types_pb2.DT_FLOAT
    t.tensor_shape.dim.add().size = n
    t.float_val.append(value)
    y = g.node.add()
    y.name, y.op = "y", "AddV2"
    y.input.extend(["x", "c"])
    y.attr["T"].type = types_pb2.DT_FLOAT
    return g


def test_a_huge_splat_constant_stays_a_fill(tmp_path):
    path = write(tmp_path, "splat.pb", splat_graph(1 << 28))
    out_dir = tmp_path / "out"
    code, seconds, rss, out = measured("convert", path, "-o", out_dir)
    assert code == 0, out
    assert seconds < 5 and rss < 200 * MIB, (seconds, rss / MIB)
    assert (out_dir / "model.safetensors").stat().st_size < 1024
    assert "torch.full((268435456,), 1.5, device=" in (out_dir / "model.py").read_text()
    code, seconds, rss, out = measured("inspect", path)
    assert code == 0 and seconds < 5 and rss < 200 * MIB, (out, seconds, rss / MIB)


def test_a_splat_fill_computes_what_tensorflow_computes(tmp_path):
    g = splat_graph((1 << 20) + 3, value=-0.25)
    path = write(tmp_path, "splat_parity.pb", g)
    x = np.array([2.0], dtype=np.float32)
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(g, name="")
        with tf.compat.v1.Session(graph=graph) as sess:
            y = sess.run("y:0", {"x:0": x})
    np.savez(tmp_path / "splat_parity.npz", input_0=x, output_0=y)
    out_dir = tmp_path / "out"
    run_cli("convert", path, "-o", out_dir)
    assert "torch.full(" in (out_dir / "model.py").read_text()
    assert_parity(out_dir, tmp_path / "splat_parity.npz")


def test_module_attribute_list_covers_the_installed_torch():
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "module_attributes.py"
    attrs = runpy.run_path(str(script))["module_attributes"]()
    committed = set(
        (script.parents[1] / "src" / "py" / "module_attrs.txt").read_text().split()
    )
    missing = sorted(set(attrs) - committed)
    assert not missing, f"run scripts/module_attributes.py: {missing}"


def dense_graph(layer_names):
    """`x @ W_k` for each layer name, summed: each MatMul becomes an nn.Linear named after it."""
    g = graph_pb2.GraphDef()
    placeholder(g, dims=(2, 3))
    outs = []
    for k, name in enumerate(layer_names):
        w = g.node.add()
        w.name, w.op = f"{name}/kernel", "Const"
        w.attr["dtype"].type = types_pb2.DT_FLOAT
        w.attr["value"].tensor.CopyFrom(
            tf.make_tensor_proto(np.full((3, 2), k + 1.0, np.float32))
        )
        m = g.node.add()
        m.name, m.op = f"{name}/MatMul", "MatMul"
        m.input.extend(["x", w.name])
        m.attr["T"].type = types_pb2.DT_FLOAT
        outs.append(m.name)
    y = g.node.add()
    y.name, y.op = "y", "AddN"
    y.input.extend(outs)
    y.attr["T"].type = types_pb2.DT_FLOAT
    y.attr["N"].i = len(outs)
    return g


def test_layers_named_like_module_attributes_still_work(tmp_path):
    names = ["bfloat16", "compile", "register_forward_hook", "to_empty"]
    path = write(tmp_path, "names.pb", dense_graph(names))
    out = tmp_path / "out"
    run_cli("convert", path, "-o", out)
    text = (out / "model.py").read_text()
    for n in names:
        assert f"self.{n}_ = nn.Linear(3, 2, bias=False)" in text, text
    import torch
    from conftest import import_model

    model = import_model(out).load_model()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    want = sum(x @ np.full((3, 2), k + 1.0, np.float32) for k in range(len(names)))
    got = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_file_name_with_quotes_and_backslashes_stays_inside_its_strings(tmp_path):
    import shutil

    from conftest import OPS_DIR

    src = tmp_path / 'm\\N{x}.pb"'
    shutil.copy(OPS_DIR / "tf1_cnn.pb", src)
    out = tmp_path / "out"
    run_cli("convert", src, "-o", out)
    for name in ("model.py", "check.py", "make_reference.py"):
        text = (out / name).read_text()
        # Invalid escapes are warnings before Python 3.12; as errors here.
        check = f"import warnings; warnings.simplefilter('error'); compile({text!r}, {name!r}, 'exec')"
        subprocess.run([sys.executable, "-c", check], check=True)
    assert 'PyTorch translation of m\\\\N{x}.pb\\", generated' in (out / "model.py").read_text()
