"""Inference time of a converted model against TensorFlow running the same frozen graph,
one thread each, on the fixture's inputs (a benchmark, not a test).

    python scripts/bench_inference.py build/fixtures/keras_hub_bert_base [--runs 20] [--compile]
    python scripts/bench_inference.py build/fixtures/rnn_bench_lstm   # 2-layer LSTM
    (rnn_bench_gru_loop: GRU(reset_after=False); rnn_bench_masked: a masked LSTM)
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TF's CPU kernels as on CPUs with AVX-512, where TF turns oneDNN on by itself: the same
# TF on every machine.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def best_of(fn, runs):
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("fixture", help="path without extension: FIXTURE.pb and FIXTURE.npz")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument(
        "--compile",
        action="store_true",
        help="also time torch.compile(model), plain and with inductor's freezing (the "
        "first call, which compiles, is not timed)",
    )
    # The compiled module is timed in a process of its own: inductor's LLVM and TensorFlow's
    # cannot be loaded in one process.
    p.add_argument("--compiled-module", help=argparse.SUPPRESS)
    p.add_argument("--freeze", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    import numpy as np
    import torch

    if args.compiled_module:
        return time_compiled(args.compiled_module, args.fixture, args.runs, args.freeze)
    import tensorflow as tf

    ref = np.load(args.fixture + ".npz")
    inputs = [ref[k] for k in sorted(k for k in ref if k.startswith("input_"))]
    out = tempfile.mkdtemp()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run(
        [
            os.path.join(root, "target/release/tf2torch"),
            "convert",
            args.fixture + ".pb",
            "-o",
            out,
        ],
        check=True,
        capture_output=True,
    )
    spec = importlib.util.spec_from_file_location(
        "converted", os.path.join(out, "model.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.set_num_threads(1)
    model = module.load_model()
    tensors = [torch.from_numpy(x) for x in inputs]

    def run_torch():
        with torch.no_grad():
            model(*tensors)

    graph_def = tf.compat.v1.GraphDef()
    with open(args.fixture + ".pb", "rb") as f:
        graph_def.ParseFromString(f.read())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    placeholders = [
        n.name + ":0"
        for n in graph_def.node
        if n.op == "Placeholder" and not n.name.startswith("unused_control_flow_input")
    ]
    consumed = {i.split(":")[0].lstrip("^") for n in graph_def.node for i in n.input}
    outputs = [
        n.name + ":0"
        for n in graph_def.node
        if n.name not in consumed
        and n.op not in ("NoOp", "Const", "Placeholder", "Exit")
    ]
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=1, inter_op_parallelism_threads=1
    )
    session = tf.compat.v1.Session(graph=graph, config=config)
    feed = dict(zip(placeholders, inputs))
    t_tf = best_of(lambda: session.run(outputs, feed), args.runs)
    t_torch = best_of(run_torch, args.runs)
    print(
        f"TensorFlow: {t_tf * 1000:.1f} ms  generated PyTorch: {t_torch * 1000:.1f} ms  ratio: {t_torch / t_tf:.2f}"
    )
    # The opt-in inference path: batch norms folded into the convs at load time (what TF's
    # own graph optimizer does to the frozen graph before running it).
    if any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()
    ):
        model = module.load_model(fuse_batch_norms=True)
        t_fused = best_of(run_torch, args.runs)
        print(
            f"  load_model(fuse_batch_norms=True): {t_fused * 1000:.1f} ms  ratio: {t_fused / t_tf:.2f}"
        )
        model = module.load_model(fuse_batch_norms=True, channels_last=True)
        t_last = best_of(run_torch, args.runs)
        print(
            f"  load_model(fuse_batch_norms=True, channels_last=True): {t_last * 1000:.1f} ms  ratio: {t_last / t_tf:.2f}"
        )
    if args.compile:
        command = [sys.executable, __file__, args.fixture, "--runs", str(args.runs)]
        # Frozen: inductor treats the weights as constants and prepacks them for oneDNN
        # once, as TF's oneDNN kernels cache theirs; eager PyTorch reorders each conv's
        # weights on every call.
        for label, extra in (
            ("torch.compile(model)", []),
            ("torch.compile(model), inductor freezing", ["--freeze"]),
        ):
            timed = subprocess.run(
                command + ["--compiled-module", out] + extra,
                check=False,
                capture_output=True,
                text=True,
            )
            if timed.returncode:
                print(f"  {label}: failed\n{timed.stderr[-2000:]}")
                continue
            took, t_compiled = map(float, timed.stdout.split())
            print(
                f"  {label}: {t_compiled * 1000:.1f} ms  ratio: {t_compiled / t_tf:.2f}"
                f"  (compiling took {took:.0f} s)"
            )
    sys.exit(0)


def time_compiled(out, fixture, runs, freeze):
    """Prints how long compiling took and the best time of `torch.compile` of the module
    converted into `out`, on the fixture's inputs, one thread; `freeze` turns on
    inductor's freezing (inference only)."""
    import numpy as np
    import torch
    import torch._inductor.config

    torch._inductor.config.freezing = freeze

    spec = importlib.util.spec_from_file_location(
        "converted", os.path.join(out, "model.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.set_num_threads(1)
    ref = np.load(fixture + ".npz")
    tensors = [
        torch.from_numpy(ref[k])
        for k in sorted(k for k in ref if k.startswith("input_"))
    ]
    compiled = torch.compile(module.load_model())

    def run():
        with torch.no_grad():
            compiled(*tensors)

    started = time.perf_counter()
    run()
    print(time.perf_counter() - started, best_of(run, runs))


if __name__ == "__main__":
    main()
