#!/usr/bin/env python
"""Execute the book's notebooks with papermill.

Smoke mode (default): every ``book/*.ipynb`` runs with ``SMOKE=True`` injected after its
``parameters`` cell, in the ``book/`` folder (as myst-nb and nbval do), into a temporary folder;
the committed notebooks are never touched. Any error fails the run, naming the notebook.

Real mode (``--real``): the notebooks run with their default parameters and the executed
notebook is WRITTEN BACK over the committed one (papermill's bookkeeping metadata removed).
This is how the committed outputs, which the book renders, are produced.

The environment is passed through (e.g. ``GUMBEL_LITE_DATA``, the CIFAR cache), with the
repository root prepended to ``PYTHONPATH`` so that ``import gumbel_lite`` finds this checkout.

    python scripts/run_notebooks.py                          # all notebooks, smoke mode
    python scripts/run_notebooks.py --only 03_gumbel_max     # one notebook (repeatable)
    python scripts/run_notebooks.py --real --only 03_gumbel_max
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def find_notebooks(only: list[str] | None) -> list[Path]:
    notebooks = sorted(p for p in BOOK.glob("*.ipynb") if not p.name.startswith("_"))
    if not only:
        return notebooks
    by_name = {p.stem: p for p in notebooks}
    chosen = []
    for name in only:
        stem = Path(name).name.removesuffix(".ipynb")
        if stem not in by_name:
            sys.exit(f"run_notebooks: no notebook {name!r} in {BOOK} (have: {', '.join(by_name)})")
        chosen.append(by_name[stem])
    return chosen


def strip_papermill(nb) -> None:
    """Remove papermill's run bookkeeping so that committed notebooks diff cleanly.

    Also merges consecutive stream outputs (a print loop may arrive in several chunks), so that
    the committed text does not depend on how the kernel happened to flush it.
    """
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        merged = []
        for output in cell.get("outputs", []):
            previous = merged[-1] if merged else None
            if (
                output.output_type == "stream"
                and previous is not None
                and previous.output_type == "stream"
                and previous.name == output.name
            ):
                previous.text += output.text
            else:
                merged.append(output)
        if "outputs" in cell:
            cell.outputs = merged


def run(notebook: Path, out_dir: Path, real: bool, timeout: int | None) -> Path:
    output = out_dir / notebook.name
    papermill.execute_notebook(
        str(notebook),
        str(output),
        parameters=None if real else {"SMOKE": True},
        kernel_name="python3",
        cwd=str(BOOK),
        progress_bar=False,
        execution_timeout=timeout,
    )
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="notebook stem, e.g. 03_gumbel_max")
    parser.add_argument("--real", action="store_true", help="default parameters; write outputs back")
    parser.add_argument("--output-dir", type=Path, help="where executed copies go (default: a temp dir)")
    parser.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    args = parser.parse_args(argv)

    notebooks = find_notebooks(args.only)
    # The kernels inherit this environment (GUMBEL_LITE_DATA included); put this checkout's
    # package first on the path so that the notebooks exercise the code next to them.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    out_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="gumbel-lite-nb-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    if out_dir.resolve() == BOOK.resolve():
        sys.exit("run_notebooks: --output-dir must not be book/ (use --real to write back)")
    mode = "real (default parameters, written back)" if args.real else "smoke (SMOKE=True)"
    print(f"run_notebooks: {len(notebooks)} notebook(s), {mode}, executed copies in {out_dir}")

    failures: list[str] = []
    for notebook in notebooks:
        start = time.perf_counter()
        print(f"  {notebook.name} ...", end="", flush=True)
        try:
            output = run(notebook, out_dir, args.real, args.timeout)
        except Exception as error:  # papermill raises PapermillExecutionError naming the cell
            print(f" FAILED after {time.perf_counter() - start:.1f} s")
            print(f"\n===== {notebook.relative_to(ROOT)} failed =====\n{error}\n", file=sys.stderr)
            failures.append(notebook.name)
            continue
        print(f" ok ({time.perf_counter() - start:.1f} s)")
        if args.real:
            nb = nbformat.read(output, as_version=4)
            strip_papermill(nb)
            notebook.write_text(nbformat.writes(nb).rstrip("\n") + "\n")
            print(f"    wrote outputs back to {notebook.relative_to(ROOT)}")

    if failures:
        print(f"run_notebooks: FAILED: {', '.join(failures)}", file=sys.stderr)
        return 1
    print(f"run_notebooks: all {len(notebooks)} notebook(s) ran without error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
