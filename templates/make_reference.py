"""Runs the original TensorFlow model on random inputs and saves inputs and outputs to
reference.safetensors, for check.py. Needs TensorFlow (the converted model does not).

    python make_reference.py [MODEL] [--seed 0]

MODEL defaults to the path the model was converted from, relative to this folder.
Unknown dimensions are 2 for the batch and 8 elsewhere; edit INPUTS to change them.
"""

import argparse
import json
import os
import struct

import numpy as np
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = {{ model }}
# "graph_def" (frozen .pb), "saved_model" or "checkpoint" (TF1 .meta + variables).
FORMAT = {{ format }}
SIGNATURE = {{ signature }}
TAGS = {{ tags }}
# name in TensorFlow, dtype, shape, and for integers the exclusive upper bound.
INPUTS = [
{%- for i in inputs %}
    {{ i }},
{%- endfor %}
]
OUTPUTS = [
{%- for o in outputs %}
    {{ o }},
{%- endfor %}
]


def random_inputs(seed):
    rng = np.random.default_rng(seed)
    values = []
    for _, dtype, shape, high in INPUTS:
        if np.issubdtype(np.dtype(dtype), np.integer):
            values.append(rng.integers(0, high, size=shape).astype(dtype))
        elif dtype == "bool":
            values.append(rng.random(shape) < 0.5)
        else:
            values.append(rng.standard_normal(shape).astype(dtype))
    return values


def run(path, values):
    if FORMAT == "saved_model":
        fn = tf.saved_model.load(path, tags=TAGS).signatures[SIGNATURE]
        feeds = {name: tf.constant(v) for (name, *_), v in zip(INPUTS, values)}
        result = fn(**feeds)
        return [result[k].numpy() for k in OUTPUTS]
    if FORMAT == "checkpoint":
        with tf.Graph().as_default() as graph:
            meta = path + ".meta"
            saver = tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
            with tf.compat.v1.Session(graph=graph) as session:
                saver.restore(session, path)
                feeds = {name: v for (name, *_), v in zip(INPUTS, values)}
                return session.run(OUTPUTS, feeds)
    graph_def = tf.compat.v1.GraphDef()
    with open(path, "rb") as f:
        graph_def.ParseFromString(f.read())
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            feeds = {name: v for (name, *_), v in zip(INPUTS, values)}
            return session.run(OUTPUTS, feeds)


_DTYPES = {"float32": "F32", "float64": "F64", "int32": "I32", "int64": "I64"}
_DTYPES.update({"uint8": "U8", "int8": "I8", "int16": "I16", "bool": "BOOL"})
_DTYPES.update({"float16": "F16"})


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array).tobytes()
        dtype = _DTYPES[str(array.dtype)]
        end = offset + len(data)
        header[name] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, end],
        }
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=os.path.join(HERE, MODEL))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(HERE, "reference.safetensors"))
    args = parser.parse_args()
    values = random_inputs(args.seed)
    outputs = run(args.model, values)
    tensors = {f"input_{i}": np.asarray(v) for i, v in enumerate(values)}
    tensors.update({f"output_{i}": np.asarray(v) for i, v in enumerate(outputs)})
    save_safetensors(args.out, tensors)
    print(f"wrote {args.out}: {len(values)} inputs, {len(outputs)} outputs")


if __name__ == "__main__":
    main()
