#!/usr/bin/env python
"""Run Colab editions the way Colab does: alone in an empty folder, install cell on.

For each chapter named, the Colab edition (``colab/NN_name.ipynb``) is copied into an empty
temporary folder and executed there with papermill in smoke mode, with the install cell forced
on (``GUMBEL_LITE_COLAB=1``) and pointed at a clone of this repository
(``GUMBEL_LITE_REPOSITORY=file://…``). The install cell clones the repository next to the
notebook, pip-installs the package from the clone and moves into the clone's ``book/`` folder;
then the chapter runs. pip installs into a folder of its own (``PIP_TARGET``, no dependencies),
put first on the kernel's path, so the environment running this check is left as it was and the
chapter imports the package it installed.

A pass means: the notebook ran to the end, the clone and the installed package exist, and the
kernel imported ``gumbel_lite`` from the installed copy. Datasets come from ``$GUMBEL_LITE_DATA``
when set (the prepared cache), as on a machine without network.

Usage::

    python scripts/check_colab.py 02 09 10      # chapters by number (default: 02 09 10)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill

ROOT = Path(__file__).resolve().parents[1]
COLAB = ROOT / "colab"
DEFAULT = ("02", "09", "10")
PROBE = "import gumbel_lite, pathlib\nprint('gumbel_lite from', pathlib.Path(gumbel_lite.__file__).resolve().parent)"


def edition(number: str) -> Path:
    found = sorted(COLAB.glob(f"{number}_*.ipynb"))
    if len(found) != 1:
        choices = ", ".join(p.name.split("_")[0] for p in sorted(COLAB.glob("[0-9]*.ipynb")))
        raise SystemExit(f"no single Colab edition for chapter {number!r} in {COLAB}; choices: {choices}")
    return found[0]


def check(notebook: Path, workdir: Path) -> None:
    """Execute one Colab edition in ``workdir`` (empty) and check what its install cell did."""
    target = workdir / "site-packages"
    target.mkdir()  # exists before the kernel starts, so the import system looks there
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))  # where the kernel found the package
    copy = workdir / notebook.name
    nbformat.write(nb, copy)
    env = {
        "GUMBEL_LITE_COLAB": "1",
        "GUMBEL_LITE_REPOSITORY": ROOT.as_uri(),
        "PIP_TARGET": str(target),
        "PIP_NO_DEPS": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONPATH": str(target),
        "MPLBACKEND": "Agg",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        papermill.execute_notebook(
            str(copy), str(copy), parameters={"SMOKE": True}, cwd=str(workdir), kernel_name="python3", progress_bar=False
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    clone, installed = workdir / "gumbel-lite", target / "gumbel_lite"
    if not (clone / "book").is_dir():
        raise AssertionError(f"{notebook.name}: the install cell did not clone the repository into {clone}")
    if not installed.is_dir():
        raise AssertionError(f"{notebook.name}: the install cell did not install the package into {target}")
    printed = "".join(o.get("text", "") for o in nbformat.read(copy, as_version=4).cells[-1].get("outputs", []))
    if f"gumbel_lite from {installed.resolve()}" not in printed:
        raise AssertionError(f"{notebook.name}: the kernel did not import the installed package ({printed.strip()!r})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", default=list(DEFAULT), help="chapter numbers, e.g. 02 09 10")
    args = parser.parse_args(argv)
    if shutil.which("git") is None:
        raise SystemExit("git is needed: the install cell clones the repository")
    notebooks = [edition(n) for n in args.chapters]
    for notebook in notebooks:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="colab-") as tmp:
            check(notebook, Path(tmp))
        print(f"{notebook.name}: ran on the Colab path in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
