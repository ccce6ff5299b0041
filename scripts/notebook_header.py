#!/usr/bin/env python
"""Generate, refresh or check the standard first cells of every chapter notebook.

Every chapter notebook ``book/NN_name.ipynb`` has the same skeleton:

1. a markdown title ``# N. Title`` with "What you will learn" bullets (written by hand);
2. ``badge``   (generated): an "Open in Colab" badge, removed from the rendered book;
3. ``install`` (generated): the Colab install guard, quiet, input folded in the book;
4. a cell tagged ``parameters`` (papermill) with ``SMOKE = False`` and the chapter's knobs,
   followed by a cell that shrinks them when ``SMOKE`` (both written by hand);
5. ``setup``   (generated): device selection and seeding through the package;
6. ... the chapter ..., ending with ``## Summary`` and ``## Exercises``.

The generated cells carry ``metadata.gumbel_lite.header = "<name>"`` and their text is defined
only here; the repository URL is read from ``_config.yml`` (``repository.url``), its one home.

Usage::

    python scripts/notebook_header.py            # refresh every book/*.ipynb in place
    python scripts/notebook_header.py --check    # exit 1 naming each stale notebook
    python scripts/notebook_header.py book/03_gumbel_max.ipynb [--check]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
KEY = "gumbel_lite"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def repository() -> tuple[str, str, str]:
    """(url, branch, path_to_book) from _config.yml."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main"), (repo.get("path_to_book") or "").strip("/")


def header_cells(notebook: Path) -> dict[str, nbformat.NotebookNode]:
    """The generated cells for one notebook, by name."""
    url, branch, path_to_book = repository()
    rel = notebook.resolve().relative_to(ROOT / path_to_book if path_to_book else ROOT).as_posix()
    github = url.removeprefix("https://github.com/")
    colab = f"https://colab.research.google.com/github/{github}/blob/{branch}/{rel}"
    badge = (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab})\n"
        f"[![View on GitHub](https://img.shields.io/badge/view%20on-GitHub-blue)]({url}/blob/{branch}/{rel})"
    )
    install = (
        "# On Colab, install the companion package quietly; elsewhere it is installed.\n"
        "import sys\n"
        "\n"
        'IN_COLAB = "google.colab" in sys.modules\n'
        "if IN_COLAB:\n"
        f'    %pip install -q "gumbel-lite @ git+{url}@{branch}"'
    )
    setup = "import gumbel_lite as gl\n\ndevice = gl.default_device()  # cuda, mps or cpu (with a hint for Colab)\ngl.seed_everything(0)"
    cells = {
        "badge": nbformat.v4.new_markdown_cell(badge, metadata={"tags": ["remove-cell"]}),
        "install": nbformat.v4.new_code_cell(install, metadata={"tags": ["hide-input", "remove-output"]}),
        "setup": nbformat.v4.new_code_cell(setup, metadata={"tags": []}),
    }
    for name, cell in cells.items():
        cell.metadata[KEY] = {"header": name}
        cell.pop("id", None)
    return cells


def header_name(cell) -> str | None:
    return cell.get("metadata", {}).get(KEY, {}).get("header")


def parameters_index(nb) -> int | None:
    for i, cell in enumerate(nb.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return i
    return None


def problems(nb, notebook: Path) -> list[str]:
    """Everything that does not follow the convention (empty list: all good)."""
    found: list[str] = []
    expected = header_cells(notebook)
    cells = nb.cells
    match = re.match(r"(\d+)_", notebook.name)
    if not cells or cells[0].cell_type != "markdown":
        found.append("first cell must be the markdown title")
    else:
        title = cells[0].source.lstrip()
        number = int(match.group(1)) if match else None
        if not re.match(rf"# {number}\. \S", title):
            found.append(f"first cell must start with '# {number}. Title'")
        if "What you will learn" not in title:
            found.append("first cell must list 'What you will learn'")
    names = [header_name(c) for c in cells]
    for position, name in ((1, "badge"), (2, "install")):
        if len(names) <= position or names[position] != name:
            found.append(f"cell {position} must be the generated '{name}' cell")
    p = parameters_index(nb)
    if p is None:
        found.append("no cell tagged 'parameters'")
    elif "SMOKE = False" not in cells[p].source:
        found.append("the 'parameters' cell must set SMOKE = False")
    if "setup" not in names:
        found.append("missing the generated 'setup' cell")
    elif p is not None and names.index("setup") < p:
        found.append("the 'setup' cell must come after the 'parameters' cell")
    for cell in cells:
        name = header_name(cell)
        if name in expected:
            want = expected[name]
            if cell.cell_type != want.cell_type or cell.source != want.source:
                found.append(f"generated '{name}' cell is stale")
            if sorted(cell.metadata.get("tags", [])) != sorted(want.metadata["tags"]):
                found.append(f"generated '{name}' cell has tags {cell.metadata.get('tags')}")
    headings = [c.source for c in cells if c.cell_type == "markdown"]
    for heading in ("## Summary", "## Exercises"):
        if not any(re.search(rf"^{heading}\s*$", s, re.M) for s in headings):
            found.append(f"no '{heading}' section")
    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        found.append("kernelspec name must be python3")
    return found


def refresh(nb, notebook: Path) -> None:
    """Rewrite the generated cells in place, inserting any that are missing."""
    expected = header_cells(notebook)
    for cell in nb.cells:
        name = header_name(cell)
        if name in expected:
            new = expected[name]
            cell.cell_type = new.cell_type
            cell.source = new.source
            cell.metadata = {**cell.metadata, "tags": list(new.metadata["tags"]), KEY: {"header": name}}
            if new.cell_type == "markdown":
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
    names = [header_name(c) for c in nb.cells]
    if "badge" not in names:
        nb.cells.insert(1, expected["badge"])
    names = [header_name(c) for c in nb.cells]
    if "install" not in names:
        nb.cells.insert(names.index("badge") + 1, expected["install"])
    names = [header_name(c) for c in nb.cells]
    if "setup" not in names:
        p = parameters_index(nb)
        # After the parameters cell and the cell that shrinks them under SMOKE.
        at = names.index("install") + 1 if p is None else min(p + 2, len(nb.cells))
        nb.cells.insert(at, expected["setup"])
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in nb.cells:  # nbformat 4.5 wants ids; give new cells stable ones
        if "id" not in cell:
            cell["id"] = f"{KEY}-{header_name(cell) or 'cell'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: book/[0-9]*.ipynb")
    parser.add_argument("--check", action="store_true", help="fail if a notebook's header is stale")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(BOOK.glob("[0-9]*.ipynb"))
    failed = 0
    for notebook in notebooks:
        nb = nbformat.read(notebook, as_version=4)
        if args.check:
            found = problems(nb, notebook)
            for problem in found:
                print(f"{notebook}: {problem}", file=sys.stderr)
            failed += bool(found)
            continue
        before = notebook.read_text()
        refresh(nb, notebook)
        after = nbformat.writes(nb).rstrip("\n") + "\n"
        if after != before:
            notebook.write_text(after)
            print(f"refreshed {notebook}")
        for problem in problems(nb, notebook):
            print(f"{notebook}: {problem} (fix by hand)", file=sys.stderr)
            failed += 1
    if args.check and failed:
        print(
            f"{failed} notebook(s) do not follow the header convention; "
            "run `python scripts/notebook_header.py` to refresh the generated cells",
            file=sys.stderr,
        )
    elif args.check:
        print(f"notebook headers OK ({len(notebooks)} notebooks)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
