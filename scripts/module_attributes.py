"""Writes src/py/module_attrs.txt: every attribute an `nn.Module` has (class and instance),
which a generated layer or buffer name must not shadow. Run after a torch upgrade; the test
suite fails while the list misses a name the installed torch has.

    .venv/bin/python scripts/module_attributes.py
"""

from pathlib import Path

from torch import nn


def module_attributes():
    return sorted(set(dir(nn.Module)) | set(vars(nn.Module()).keys()))


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "src" / "py" / "module_attrs.txt"
    known = set(out.read_text().split()) if out.exists() else set()
    out.write_text("\n".join(sorted(known | set(module_attributes()))) + "\n")
    print(f"wrote {out}")
