"""Tells float32 drift from a wrong translation: runs a frozen float32 graph in float64 with
TensorFlow (every float32 type and constant widened) and the converted module in float64,
and compares both with TensorFlow's own float32 outputs.

    .venv/bin/python scripts/float64_reference.py MODEL.pb INPUTS.npz OUT_DIR

`INPUTS.npz` holds `input_0..` and `output_0..` (as `tests/fixtures/general.py` writes them),
`OUT_DIR` is what `tf2torch convert MODEL.pb -o OUT_DIR` wrote. If the module matches
TensorFlow in float64 while TensorFlow's float32 outputs are themselves far from its float64
ones, the float32 mismatch is rounding amplified by the network, not the translation.
Single-input, single-output graphs only.
"""

import importlib.util
import os
import sys

import numpy as np
import tensorflow as tf
import torch


def widened(graph_def):
    """The graph with every float32 type and constant made float64."""
    f32, f64 = tf.float32.as_datatype_enum, tf.float64.as_datatype_enum
    for node in graph_def.node:
        for value in node.attr.values():
            if value.type == f32:
                value.type = f64
            if value.list.type:
                value.list.type[:] = [f64 if t == f32 else t for t in value.list.type]
            if value.HasField("tensor") and value.tensor.dtype == f32:
                wide = tf.make_ndarray(value.tensor).astype(np.float64)
                value.tensor.CopyFrom(tf.make_tensor_proto(wide))
    return graph_def


def main(pb, npz, out):
    graph_def = tf.compat.v1.GraphDef()
    with open(pb, "rb") as f:
        graph_def.ParseFromString(f.read())
    placeholders = [n.name for n in graph_def.node if n.op == "Placeholder"]
    consumed = {i.split(":")[0].lstrip("^") for n in graph_def.node for i in n.input}
    sinks = [
        n.name for n in graph_def.node if n.name not in consumed and n.op != "NoOp"
    ]
    if len(placeholders) != 1 or len(sinks) != 1:
        sys.exit(f"{pb}: one input and one output only ({placeholders}, {sinks})")
    data = np.load(npz)
    x, tf32 = data["input_0"], data["output_0"]
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(widened(graph_def), name="")
    with tf.compat.v1.Session(graph=graph) as session:
        tf64 = session.run(
            f"{sinks[0]}:0", {f"{placeholders[0]}:0": x.astype(np.float64)}
        )
    spec = importlib.util.spec_from_file_location(
        "converted", os.path.join(out, "model.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load_model(os.path.join(out, "model.safetensors"))
    with torch.no_grad():
        torch64 = model.double()(torch.from_numpy(x.astype(np.float64))).numpy()
        torch32 = model.float()(torch.from_numpy(x)).numpy()

    def rel(a, b):
        return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))

    print(f"module vs TF, float64:      {rel(torch64, tf64):.2g}")
    print(f"TF float32 vs TF float64:   {rel(tf32, tf64):.2g}")
    print(f"module vs TF, float32:      {rel(torch32, tf32):.2g}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
