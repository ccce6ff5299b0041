#!/usr/bin/env python
"""Write student copies of the chapter notebooks: exercises kept, solutions removed.

For every ``book/[0-9]*.ipynb`` this writes ``students/<same name>.ipynb`` (git-ignored) where

* every ``{solution}`` directive is removed from the markdown cells, and so is everything
  between a ``{solution-start}`` and its ``{solution-end}`` (which may span several cells:
  markdown cells inside are dropped, code cells inside become a stub);
* every code cell tagged ``solution`` is replaced by a ``# Your code here`` stub;
* all outputs and execution counts are cleared.

``--check`` writes the copies into a temporary folder instead, verifies that no solution is
left, and executes each one with papermill and ``SMOKE=True`` in the ``book/`` folder (so the
notebooks' relative paths, e.g. ``../data/results``, resolve as in the book). It exits 1 naming
every notebook that failed.

    python scripts/make_student_notebooks.py             # students/*.ipynb
    python scripts/make_student_notebooks.py --check     # generate in a temp dir and run them
    python scripts/make_student_notebooks.py --only 10_anatomy [--check]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
STUDENTS = ROOT / "students"
STUB = "# Your code here\n"
# An opening fence of a directive: 3+ backticks or colons, then {name}.
OPENING = re.compile(r"^\s*(?P<fence>`{3,}|:{3,})\s*\{(?P<name>[\w-]+)\}")


def closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened by ``fence`` (same character, at least as long)."""
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def strip_solutions(text: str, in_span: bool) -> tuple[str, bool]:
    """Remove solution directives from one markdown cell.

    ``in_span``: whether the cell starts inside a ``solution-start`` … ``solution-end`` span.
    Returns the remaining text and whether the cell ends inside such a span.
    """
    kept: list[str] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        match = OPENING.match(lines[i])
        name = match.group("name") if match else None
        if name in ("solution", "solution-start", "solution-end"):
            fence = match.group("fence")
            i += 1
            while i < len(lines) and not closes(lines[i], fence):
                i += 1
            i += 1  # the closing fence
            if name == "solution-start":
                in_span = True
            elif name == "solution-end":
                in_span = False
            continue
        if not in_span:
            kept.append(lines[i])
        i += 1
    return re.sub(r"\n{3,}", "\n\n", "".join(kept)).strip() + "\n", in_span


def student_version(nb):
    """A copy of notebook ``nb`` without solutions or outputs."""
    nb = nbformat.from_dict(nb)
    cells = []
    in_span = False
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "markdown":
            text, in_span = strip_solutions(cell.source, in_span)
            if text.strip():  # a cell that held only solution text disappears
                cell.source = text.rstrip("\n")
                cells.append(cell)
            continue
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            if in_span or "solution" in tags:
                cell.source = STUB.rstrip("\n")
        cells.append(cell)
    nb.cells = cells
    nb.metadata.pop("papermill", None)
    return nb


def leftovers(nb) -> list[str]:
    """Traces of solutions left in a student notebook (empty list: none)."""
    found = []
    for i, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "markdown" and re.search(r"\{solution(-start|-end)?\}", cell.source):
            found.append(f"cell {i}: solution directive left in markdown")
        if cell.cell_type == "code" and "solution" in tags and cell.source.strip() != STUB.strip():
            found.append(f"cell {i}: code cell tagged 'solution' not emptied")
        if cell.cell_type == "code" and cell.get("outputs"):
            found.append(f"cell {i}: outputs not cleared")
    return found


def write_students(notebooks: list[Path], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for notebook in notebooks:
        student = student_version(nbformat.read(notebook, as_version=4))
        target = out_dir / notebook.name
        target.write_text(nbformat.writes(student).rstrip("\n") + "\n")
        written.append(target)
    return written


def check(written: list[Path], timeout: int | None) -> list[str]:
    """Verify and execute every student notebook (SMOKE=True, cwd book/); return failures."""
    from run_notebooks import run  # scripts/ is on sys.path when this script runs

    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    failures = []
    executed = Path(tempfile.mkdtemp(prefix="gumbel-lite-students-run-"))
    for path in written:
        start = time.perf_counter()
        print(f"  {path.name} ...", end="", flush=True)
        problems = leftovers(nbformat.read(path, as_version=4))
        if problems:
            print(" FAILED (solutions left)")
            print("\n".join(f"    {path.name}: {p}" for p in problems), file=sys.stderr)
            failures.append(path.name)
            continue
        try:
            run(path, executed, real=False, timeout=timeout)  # the same smoke run as the book's notebooks
        except Exception as error:  # papermill names the failing cell
            print(f" FAILED after {time.perf_counter() - start:.1f} s")
            print(f"\n===== students/{path.name} failed =====\n{error}\n", file=sys.stderr)
            failures.append(path.name)
            continue
        print(f" ok ({time.perf_counter() - start:.1f} s)")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="generate into a temp dir and execute (SMOKE=True)")
    parser.add_argument("--only", action="append", metavar="NAME", help="notebook stem, e.g. 10_anatomy")
    parser.add_argument("--out", type=Path, default=STUDENTS, help="output folder (default: students/)")
    parser.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds (--check)")
    args = parser.parse_args(argv)

    notebooks = sorted(BOOK.glob("[0-9]*.ipynb"))
    if args.only:
        stems = {Path(name).name.removesuffix(".ipynb") for name in args.only}
        unknown = stems - {p.stem for p in notebooks}
        if unknown:
            sys.exit(f"make_student_notebooks: no notebook {', '.join(sorted(unknown))} in {BOOK}")
        notebooks = [p for p in notebooks if p.stem in stems]
    out_dir = Path(tempfile.mkdtemp(prefix="gumbel-lite-students-")) if args.check else args.out
    written = write_students(notebooks, out_dir)
    print(f"make_student_notebooks: {len(written)} student notebook(s) in {out_dir}")
    if not args.check:
        return 0
    failures = check(written, args.timeout)
    if failures:
        print(f"make_student_notebooks: FAILED: {', '.join(failures)}", file=sys.stderr)
        return 1
    print(f"make_student_notebooks: all {len(written)} student notebook(s) ran without error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
