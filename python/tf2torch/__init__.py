"""tf2torch from Python: a thin wrapper around the `tf2torch` command installed with this
package. Converting needs neither TensorFlow nor torch.

    import tf2torch
    tf2torch.convert("mobilenet_v2.pb", "out/", class_name="MobileNet")
    print(tf2torch.inspect("exported_model/"))
"""

import os
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tf2torch")
except PackageNotFoundError:  # running from a source checkout
    __version__ = "unknown"

__all__ = ["ConversionError", "binary", "convert", "inspect"]


class ConversionError(RuntimeError):
    """The command failed; the message is what it printed on stderr."""


def binary():
    """Path of the `tf2torch` executable this package installed (else the one on PATH)."""
    name = "tf2torch.exe" if sys.platform == "win32" else "tf2torch"
    here = os.path.join(sysconfig.get_path("scripts"), name)
    found = here if os.path.isfile(here) else shutil.which("tf2torch")
    if found is None:
        raise FileNotFoundError("the tf2torch command is not installed (pip install tf2torch)")
    return found


def _flags(options):
    """`class_name="Net", strict=True, outputs=["a:0", "b:0"]` as command-line flags."""
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            args += [flag, ",".join(map(str, value))]
        else:
            args += [flag, str(value)]
    return args


def _run(args):
    proc = subprocess.run([binary(), *map(str, args)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ConversionError(proc.stderr.strip())
    return proc.stdout


def convert(src, out, **options):
    """Converts the model at `src` into the folder `out`; returns the summary the command
    prints. Options are the command's flags: `inputs`, `outputs`, `class_name`, `strict`,
    `max_shard_size`, `tags`, `signature`."""
    return _run(["convert", src, "-o", out, *_flags(options)])


def inspect(src, **options):
    """The report `tf2torch inspect` prints: inputs, outputs, ops and what would translate."""
    return _run(["inspect", src, *_flags(options)])
