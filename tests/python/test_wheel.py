"""`pip install tf2torch`: the wheel maturin builds (scripts/test.sh builds it into build/wheels)
installs into a fresh venv, with nothing else, the `tf2torch` command and the thin Python API,
and the installed command converts the shipped sample."""

import subprocess
import sys

import pytest
import tomllib
from conftest import ROOT

WHEELS = ROOT / "build" / "wheels"


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    wheels = sorted(WHEELS.glob("tf2torch-*.whl"))
    if not wheels:
        pytest.fail(f"no wheel in {WHEELS}: run `maturin build --release --out build/wheels` (scripts/test.sh does)")
    env = tmp_path_factory.mktemp("wheel") / "venv"
    subprocess.run([sys.executable, "-m", "venv", env], check=True)
    pip = [env / "bin" / "python", "-m", "pip", "install", "-q", "--no-index", "--disable-pip-version-check"]
    subprocess.run([*pip, wheels[-1]], check=True)
    return env


def test_installed_command_converts_the_sample(venv, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [venv / "bin" / "tf2torch", "convert", ROOT / "samples" / "small_cnn.pb", "-o", out],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "model.py").exists() and (out / "model.safetensors").exists()


def test_version_is_cargos(venv):
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    proc = subprocess.run([venv / "bin" / "tf2torch", "--version"], capture_output=True, text=True, check=False)
    assert proc.stdout.strip() == f"tf2torch {cargo}"
    code = "import tf2torch; print(tf2torch.__version__)"
    proc = subprocess.run([venv / "bin" / "python", "-c", code], capture_output=True, text=True, check=False)
    assert proc.stdout.strip() == cargo, proc.stderr


def test_python_api(venv, tmp_path):
    code = f"""
import tf2torch
print(tf2torch.convert({str(ROOT / "samples" / "small_cnn.pb")!r}, {str(tmp_path / "api")!r},
                       class_name="Net", strict=True))
try:
    tf2torch.convert({str(tmp_path / "missing.pb")!r}, {str(tmp_path / "x")!r})
except tf2torch.ConversionError as e:
    print("refused:", e)
"""
    proc = subprocess.run([venv / "bin" / "python", "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "class Net" in proc.stdout and "refused: error:" in proc.stdout and "missing.pb" in proc.stdout
    assert "class Net(nn.Module)" in (tmp_path / "api" / "model.py").read_text()
