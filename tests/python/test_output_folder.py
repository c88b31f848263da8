"""The output folder: replaced as a whole, with the user's files kept. Two conversions into
one folder take turns and never mix; a regenerated folder holds no leftovers of the previous
model; files get the permissions the umask asks for."""

import os
import stat
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ROOT, binary, run_cli

tf = pytest.importorskip("tensorflow")
from tensorflow.core.framework import graph_pb2, types_pb2

SHAPED = ROOT / "samples" / "small_cnn.pb"
GENERATED = ("model.py", "model.safetensors", "check.py", "make_reference.py")


def unshaped_model(tmp_path):
    """x (float, no declared shape) -> Relu: make_reference.py cannot be written for it."""
    g = graph_pb2.GraphDef()
    x = g.node.add()
    x.name, x.op = "x", "Placeholder"
    x.attr["dtype"].type = types_pb2.DT_FLOAT
    relu = g.node.add()
    relu.name, relu.op = "relu", "Relu"
    relu.input.append("x")
    relu.attr["T"].type = types_pb2.DT_FLOAT
    path = tmp_path / "unshaped.pb"
    path.write_bytes(g.SerializeToString())
    return path


def snapshot(folder):
    return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}


def test_regenerating_removes_the_previous_models_files_and_keeps_the_users(tmp_path):
    out = tmp_path / "out"
    run_cli("convert", SHAPED, "-o", out)
    assert (out / "make_reference.py").exists()
    (out / "notes.txt").write_text("mine")
    (out / "custom_ops.py").write_text("def helper(x):\n    return x\n")
    (out / "data").mkdir()
    (out / "data" / "inputs.txt").write_text("also mine")
    run_cli("convert", unshaped_model(tmp_path), "-o", out)
    assert not (out / "make_reference.py").exists(), "left over from the previous model"
    assert "class Unshaped(" in (out / "model.py").read_text()
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "custom_ops.py").read_text() == "def helper(x):\n    return x\n"
    assert (out / "data" / "inputs.txt").read_text() == "also mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tf2torch-")]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_file_gets_the_permissions_the_umask_asks_for(umask, tmp_path):
    out = tmp_path / "out"
    subprocess.run(
        [binary(), "convert", str(SHAPED), "-o", str(out)], check=True, capture_output=True, umask=umask
    )
    want = 0o666 & ~umask
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == dict.fromkeys(GENERATED, want), {k: oct(v) for k, v in modes.items()}
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask


def test_an_output_path_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "out"
    target.write_text("not a folder")
    proc = run_cli("convert", SHAPED, "-o", target, check=False)
    assert proc.returncode == 1
    assert "the output path is a file" in proc.stderr, proc.stderr
    assert target.read_text() == "not a folder"


def complete_sets(tmp_path, models):
    """Each model's files, converted alone (as deep in the tree as the shared folder:
    make_reference.py names the model relative to its folder)."""
    sets = []
    for k, model in enumerate(models):
        out = tmp_path / f"alone{k}" / "out"
        run_cli("convert", model, "-o", out)
        sets.append(snapshot(out))
    return sets


def read_through_folder_handle(out):
    """The folder's generated files as one open folder shows them (None while it is absent)."""
    try:
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return None
    try:
        files = {}
        for name in GENERATED:
            try:
                with open(name, "rb", opener=lambda p, flags: os.open(p, flags, dir_fd=fd)) as f:
                    files[name] = f.read()
            except FileNotFoundError:
                pass
        return files
    finally:
        os.close(fd)


@pytest.mark.parametrize("existing", [False, True], ids=["new folder", "existing folder"])
def test_parallel_conversions_into_one_folder_never_mix(existing, tmp_path):
    models = [SHAPED, unshaped_model(tmp_path)]
    sets = complete_sets(tmp_path, models)
    parent = tmp_path / "parent"
    parent.mkdir()
    out = parent / "out"
    if existing:
        run_cli("convert", models[1], "-o", out)

    mixed = []
    done = threading.Event()

    def reader():
        # Whatever one open of the folder shows is one model's complete set (files of the old
        # folder may already be gone: fewer files, never another model's).
        while not done.is_set():
            seen = read_through_folder_handle(out)
            if seen and not any(seen.items() <= s.items() for s in sets):
                mixed.append(sorted(seen))

    def convert(k):
        cmd = [binary(), "convert", str(models[k % 2]), "-o", str(out)]
        return subprocess.run(cmd, capture_output=True, text=True)

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            runs = list(pool.map(convert, range(40)))
    finally:
        done.set()
        watcher.join()
    failed = [r.stderr for r in runs if r.returncode != 0]
    assert not failed, failed[:3]
    assert not mixed, mixed[:3]
    final = snapshot(out)
    assert final in sets, sorted(final)
    assert sorted(p.name for p in parent.iterdir()) == ["out"], "staging folders left behind"
