#!/usr/bin/env python
"""Write student copies of the chapter notebooks: exercises kept, solutions removed.

For every ``book/[0-9]*.ipynb`` this writes ``students/<same name>.ipynb`` (git-ignored) where

* every ``{solution}`` directive is removed from the markdown cells, and so is everything
  between a ``{solution-start}`` and its ``{solution-end}`` (which may span several cells:
  markdown cells inside are dropped, code cells inside become a stub);
* every code cell tagged ``solution`` is replaced by a ``# Your code here`` stub;
* in graded notebooks (the labs, whose cells carry nbgrader's metadata), every region between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION`` of a solution cell becomes nbgrader's own stub,
  ``# YOUR CODE HERE`` / ``raise NotImplementedError()`` (a solution cell without such a region
  becomes the stub entirely; a written answer becomes ``YOUR ANSWER HERE``), and every region
  between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` of a test cell is removed, as
  ``nbgrader generate_assignment`` does;
* all outputs and execution counts are cleared.

``--check`` writes the copies into a temporary folder instead, verifies that no solution is
left, and executes each one with ``SMOKE=True`` in the ``book/`` folder (so the notebooks'
relative paths, e.g. ``../data/results``, resolve as in the book): chapters with papermill, which
stops at the first error. A graded notebook cannot run through, since its stubs raise, so it is
checked as nbgrader's autograder would grade it, running every cell whatever fails: its
nbgrader metadata must be valid, the instructor's version (``book/``) must run without any error
and earn every point, and the student copy must earn none, every error in it being the
``NotImplementedError`` of a stub, or a ``NameError`` for what a stubbed cell did not define.
It exits 1 naming every notebook that failed.

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
from collections.abc import Iterable
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded from its path, as the tests do
from myst_blocks import Directive, Piece, Spans, parse  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
STUDENTS = ROOT / "students"
STUB = "# Your code here\n"
# nbgrader's stubs and delimiters (ClearSolutions, ClearHiddenTests), and its metadata schema 3.
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"
SOLUTION = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN_TESTS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
NBGRADER_KEYS = {"schema_version", "grade", "solution", "locked", "task", "grade_id", "points"}
GRADE_ID = re.compile(r"^[a-zA-Z0-9_\-]+$")
ALLOWED_IN_STUDENT_RUN = {"NotImplementedError", "NameError"}
SOLUTION_DIRECTIVE = "solution"  # a solution written in one cell; a span holds code cells


def strip_solutions(pieces: Iterable[Piece], spans: Spans) -> str:
    """The markdown of ``pieces`` without its solutions: ``{solution}`` directives, and spans.

    ``spans`` knows whether the text starts inside a ``solution-start`` … ``solution-end`` span,
    and is left knowing whether it ends inside one. A directive that is kept loses the solutions
    inside it.
    """
    kept = []
    for piece, in_span in spans.follow(pieces):
        if isinstance(piece, Directive):
            if not in_span and piece.name != SOLUTION_DIRECTIVE:
                kept.append(piece.with_body(strip_solutions(piece.children, spans)))
        elif not in_span:
            kept.append(piece.text)
    return "".join(kept)


def nbgrader(cell) -> dict:
    """The nbgrader metadata of a cell (empty for a cell nbgrader does not grade or lock)."""
    return cell.get("metadata", {}).get("nbgrader", {})


def is_graded(nb) -> bool:
    """Whether a notebook is an nbgrader assignment (a lab): some cell carries nbgrader metadata."""
    return any(nbgrader(cell) for cell in nb.cells)


def replace_regions(source: str, delimiters: tuple[str, str], stub: list[str]) -> tuple[str, bool]:
    """``source`` with every region between the two delimiter lines replaced by ``stub``.

    The stub takes the indentation of the opening line, as in nbgrader. Returns the new source
    and whether a region was found.
    """
    begin, end = delimiters
    kept, inside, found = [], False, False
    for line in source.split("\n"):
        if line.strip() == begin:
            if inside:
                raise ValueError(f"nested {begin!r}")
            inside = found = True
            indent = line[: len(line) - len(line.lstrip())]
            kept.extend(indent + stub_line for stub_line in stub)
        elif line.strip() == end:
            if not inside:
                raise ValueError(f"{end!r} without {begin!r}")
            inside = False
        elif not inside:
            kept.append(line)
    if inside:
        raise ValueError(f"{begin!r} without {end!r}")
    return "\n".join(kept), found


def metadata_problems(nb) -> list[str]:
    """What nbgrader (metadata schema 3) would refuse in a graded notebook (empty list: none)."""
    found, ids = [], set()
    for i, cell in enumerate(nb.cells):
        meta = nbgrader(cell)
        text = cell.source
        if not meta:
            if any(d in text for d in SOLUTION + HIDDEN_TESTS):
                found.append(f"cell {i}: solution or hidden-test delimiters in a cell without nbgrader metadata")
            continue
        where = f"cell {i} ({meta.get('grade_id', 'no grade_id')})"
        missing = {"schema_version", "grade", "solution", "locked"} - set(meta)
        if missing or set(meta) - NBGRADER_KEYS or meta.get("schema_version") != 3:
            found.append(f"{where}: keys {sorted(meta)} are not nbgrader's schema 3")
            continue
        if not GRADE_ID.match(str(meta.get("grade_id", ""))):
            found.append(f"{where}: grade_id must be letters, digits, '-' or '_'")
        elif meta["grade_id"] in ids:
            found.append(f"{where}: duplicate grade_id")
        ids.add(meta.get("grade_id"))
        if meta["grade"] and not isinstance(meta.get("points"), (int, float)):
            found.append(f"{where}: a graded cell needs points")
        if cell.cell_type == "markdown" and meta["grade"] != meta["solution"]:
            found.append(f"{where}: a markdown cell is graded exactly when it is a solution (a written answer)")
        if meta["grade"] and cell.cell_type == "code" and not meta["locked"]:
            found.append(f"{where}: an autograded test cell must be locked")
        if SOLUTION[0] in text and not meta["solution"]:
            found.append(f"{where}: a solution region in a cell not marked as a solution")
        if HIDDEN_TESTS[0] in text and not meta["grade"]:
            found.append(f"{where}: hidden tests in a cell that is not graded")
        for delimiters in (SOLUTION, HIDDEN_TESTS):
            try:
                replace_regions(text, delimiters, [])
            except ValueError as error:
                found.append(f"{where}: {error}")
    return found


def student_version(nb):
    """A copy of notebook ``nb`` without solutions, hidden tests or outputs."""
    nb = nbformat.from_dict(nb)
    cells = []
    spans = Spans()  # a span may run over several cells
    for cell in nb.cells:
        meta = nbgrader(cell)
        if meta.get("solution"):  # nbgrader's ClearSolutions
            stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
            source, replaced = replace_regions(cell.source, SOLUTION, stub.split("\n"))
            cell.source = source if replaced else stub
            cell.metadata["tags"] = [t for t in cell.metadata.get("tags", []) if t != "hide-input"]
        if meta.get("grade") and cell.cell_type == "code":  # nbgrader's ClearHiddenTests
            cell.source = replace_regions(cell.source, HIDDEN_TESTS, [])[0].rstrip("\n")
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "markdown":
            text = re.sub(r"\n{3,}", "\n\n", strip_solutions(parse(cell.source), spans)).strip()
            if text:  # a cell that held only solution text disappears
                cell.source = text
                cells.append(cell)
            continue
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            if spans.inside or "solution" in tags:
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
        if any(d in cell.source for d in SOLUTION + HIDDEN_TESTS):
            found.append(f"cell {i}: nbgrader solution or hidden tests left")
        stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
        if nbgrader(cell).get("solution") and not all(line in cell.source for line in stub.split("\n")):
            found.append(f"cell {i}: nbgrader solution cell without its stub")
    return found


def autograde(path: Path, timeout: int | None) -> tuple[float, float, list[tuple[int, str, str]]]:
    """Run a graded notebook as nbgrader's autograder does: every cell, errors allowed, SMOKE=True.

    Returns (points earned, points available, errors as (cell index, exception name, grade_id)).
    A graded cell earns its points when it raises nothing.
    """
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell("SMOKE = True  # injected by make_student_notebooks.py --check"))
    resources = {"metadata": {"path": str(BOOK)}}  # run in book/, as the chapters
    client = NotebookClient(nb, timeout=timeout or 600, kernel_name="python3", allow_errors=True, resources=resources)
    client.execute()
    earned = available = 0.0
    errors = []
    for i, cell in enumerate(nb.cells):
        failed = [o.ename for o in cell.get("outputs", []) if o.output_type == "error"]
        meta = nbgrader(cell)
        errors.extend((i, name, meta.get("grade_id", "")) for name in failed)
        if meta.get("grade") and cell.cell_type == "code":
            available += meta["points"]
            earned += 0 if failed else meta["points"]
    return earned, available, errors


def check_graded(instructor: Path, student: Path, timeout: int | None) -> tuple[list[str], str]:
    """Problems of a graded notebook (empty list: none) and a one-line report of its scores."""
    problems = metadata_problems(nbformat.read(instructor, as_version=4))
    if problems:
        return problems, ""
    earned, available, errors = autograde(instructor, timeout)
    problems += [f"instructor version: {name} in cell {i} {grade_id}" for i, name, grade_id in errors]
    stub_earned, _, stub_errors = autograde(student, timeout)
    problems += [
        f"student copy: {name} in cell {i} {grade_id} (only a stub's NotImplementedError may stop it)"
        for i, name, grade_id in stub_errors
        if name not in ALLOWED_IN_STUDENT_RUN
    ]
    if not any(name == "NotImplementedError" for _, name, _ in stub_errors):
        problems.append("student copy: no stub raised NotImplementedError")
    if stub_earned:
        problems.append(f"student copy earns {stub_earned:g} points without any of the student's code")
    by_hand = sum(nbgrader(c).get("points", 0) for c in nbformat.read(instructor, as_version=4).cells if c.cell_type == "markdown")
    report = f"autograded: instructor version {earned:g}/{available:g} points, student copy {stub_earned:g}/{available:g}"
    report += f"; {by_hand:g} more graded by hand" if by_hand else ""
    return problems, report


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
    """Verify and execute every student notebook (SMOKE=True, cwd book/); return failures.

    A graded notebook (a lab) is checked with :func:`check_graded` instead of a plain run.
    """
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
        instructor = BOOK / path.name
        if is_graded(nbformat.read(instructor, as_version=4)):
            problems, report = check_graded(instructor, path, timeout)
            if problems:
                print(f" FAILED after {time.perf_counter() - start:.1f} s")
                print("\n".join(f"    {path.name}: {p}" for p in problems), file=sys.stderr)
                failures.append(path.name)
            else:
                print(f" ok ({report}; {time.perf_counter() - start:.1f} s)")
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
