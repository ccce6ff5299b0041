#!/usr/bin/env python
"""Generate, or check, the Colab edition of every chapter: ``colab/NN_name.ipynb``.

Colab renders plain Jupyter markdown, not MyST. The Colab edition of a chapter is the chapter
with every MyST construct written out as plain markdown:

- ``{glue:text}`` placeholders become the values stored in the chapter's outputs;
- ``{term}``, ``{cite}``, ``{doc}``, ``{ref}`` and ``{numref}`` become plain text or links to the
  rendered book (figures are numbered in the chapter and get their caption under them);
- exercises become headings; solutions fold in ``<details>``, and solution code cells become
  Colab form cells that show only their title until opened (so do the solution cells of a lab,
  marked with nbgrader's metadata);
- admonitions become block quotes, or fold in ``<details>`` with ``:class: dropdown``; labels
  disappear;
- outputs and execution counts are dropped, and the first cell links to the rendered chapter.

The code cells are the chapter's own (the install cell fetches the repository on Colab), so a
Colab edition runs exactly what the book ran; its set-up cell also calls ``gl.doctor`` (device,
precision and why, versions, data, speed: the first lines of any bug report). The *Open in Colab* badge of each chapter points
here. Any MyST construct this script does not know is an error: the editions never show raw
MyST.

Usage::

    python scripts/make_colab_notebooks.py            # write colab/*.ipynb
    python scripts/make_colab_notebooks.py --check    # exit 1 if an edition is stale
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import nbformat
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded from its path, as the tests do
from myst_blocks import Directive, Piece, parse, walk  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
OUT = ROOT / "colab"
GPU_CHAPTERS = {"09_cifar_reproduction", "10_anatomy"}  # Colab asks for a GPU runtime
ADMONITIONS = {"admonition", "note", "important", "tip", "hint", "warning", "caution", "attention", "danger", "error", "seealso"}
ROLE = re.compile(r"\{([a-z]+(?::[a-z]+)?)\}`([^`]*)`")
TARGET = re.compile(r"^\(([\w-]+)\)=\s*$")
# What must never reach a Colab edition: roles, directive fences, labels, options, MyST comments.
RAW_MYST = re.compile(r"\{[a-z:-]+\}`|^(`{3,}|:{3,})\{|^\([\w-]+\)=\s*$|^:[\w-]+:|^%|^:{3,}\s*$", re.M)


class ColabError(ValueError):
    """A chapter uses MyST that has no plain-markdown form here."""


@cache
def config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def book_url() -> str:
    """Where the rendered book lives: ``html.baseurl``, else the GitHub Pages address of the repository."""
    base = (config().get("html") or {}).get("baseurl")
    if base:
        return base.rstrip("/")
    owner, name = config()["repository"]["url"].rstrip("/").removeprefix("https://github.com/").split("/")[:2]
    return f"https://{owner}.github.io/{name}"


def page_url(target: str) -> str:
    """The rendered page of a document path relative to the repository root (no suffix)."""
    return f"{book_url()}/{target}.html"


@cache
def bibliography() -> dict[str, str]:
    """Citation key -> "Author et al., year" (or "A and B, year")."""
    from pybtex.database import parse_file

    labels = {}
    for key, entry in parse_file(str(ROOT / "references.bib")).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [" ".join(p.last_names).replace("{", "").replace("}", "") for p in people]
        who = names[0] if len(names) == 1 else f"{names[0]} and {names[1]}" if len(names) == 2 else f"{names[0]} et al."
        labels[key] = f"{who}, {entry.fields.get('year', 'n.d.')}"
    return labels


@cache
def document_index() -> dict[str, dict]:
    """For every book document: its title, its labels (sections, figures, exercises) and their numbers."""
    index = {}
    for path in sorted(BOOK.glob("*.ipynb")) + sorted(BOOK.glob("*.md")):
        doc = path.relative_to(ROOT).with_suffix("").as_posix()
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            cells = [(c.cell_type, c.source, c.metadata) for c in nb.cells]
        else:
            cells = [("markdown", path.read_text(), {})]
        title, labels, figures, exercises = None, {}, 0, 0
        for kind, source, metadata in cells:
            figure = metadata.get("mystnb", {}).get("figure", {}) if kind == "code" else {}
            if figure.get("name"):
                figures += 1
                labels[figure["name"]] = ("figure", f"Figure {figures}")
            if kind != "markdown":
                continue
            lines = source.splitlines()
            for i, line in enumerate(lines):
                if title is None and line.startswith("# "):
                    title = line[2:].strip()
                target = TARGET.match(line)
                if target:
                    heading = next((x.lstrip("#").strip() for x in lines[i + 1 :] if x.startswith("#")), target.group(1))
                    labels[target.group(1)] = ("section", heading)
            for block in walk(parse(source)):
                if block.name == "exercise":
                    exercises += 1
                    if block.options.get("label"):
                        labels[block.options["label"]] = ("exercise", f"Exercise {exercises}")
        index[doc] = {"title": title or path.stem, "labels": labels}
    return index


def find_label(label: str) -> tuple[str, str, str]:
    """(document, kind, text) of a label anywhere in the book."""
    for doc, entry in document_index().items():
        if label in entry["labels"]:
            return (doc, *entry["labels"][label])
    raise ColabError(f"unknown label {label!r}")


def glue_values(nb) -> dict[str, object]:
    """The values the chapter glued, read from its stored outputs."""
    values = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            scrap = output.get("metadata", {}).get("scrapbook")
            if scrap:
                text = output["data"].get(scrap["mime_prefix"] + "text/plain", "")
                try:
                    values[scrap["name"]] = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    values[scrap["name"]] = text
    return values


def split_target(text: str) -> tuple[str | None, str]:
    """``"shown <target>"`` -> ("shown", "target"); ``"target"`` -> (None, "target")."""
    match = re.fullmatch(r"\s*(.*?)\s*<([^>]+)>\s*", text, re.S)
    return (match.group(1), match.group(2)) if match else (None, text.strip())


class Converter:
    """Turns one chapter's MyST markdown into plain markdown."""

    def __init__(self, doc: str, glue: dict[str, object]):
        self.doc, self.glue = doc, glue

    def role(self, match: re.Match) -> str:
        name, text = match.group(1), match.group(2)
        if name == "glue:text":
            key, _, spec = text.partition(":")
            if key not in self.glue:
                raise ColabError(f"{self.doc}: glue key {key!r} has no stored value (execute the chapter first)")
            value = self.glue[key]
            if not spec:
                return str(value)
            try:
                return format(value, spec)
            except (TypeError, ValueError):
                return format(float(value), spec)
        if name == "term":
            shown, target = split_target(text)
            return shown or target
        if name == "cite":
            keys = [k.strip() for k in text.split(",")]
            missing = [k for k in keys if k not in bibliography()]
            if missing:
                raise ColabError(f"{self.doc}: unknown citation key(s) {missing}")
            cited = "; ".join(bibliography()[k] for k in keys)
            return f"([{cited}]({page_url('book/references')}))"
        if name == "doc":
            shown, target = split_target(text)
            doc = (Path(self.doc).parent / target).as_posix()
            if doc not in document_index():
                raise ColabError(f"{self.doc}: unknown document {target!r}")
            return f"[{shown or document_index()[doc]['title']}]({page_url(doc)})"
        if name in ("ref", "numref"):
            shown, label = split_target(text)
            doc, kind, found = find_label(label)
            where = "" if doc == self.doc else f" of [{document_index()[doc]['title']}]({page_url(doc)})"
            if shown:
                return shown.replace("%s", found.split()[-1]) if "%s" in shown else shown + where
            return f"*{found}*{where}" if kind == "section" else found + where
        raise ColabError(f"{self.doc}: the MyST role {{{name}}} has no Colab form")

    def text(self, source: str) -> str:
        return ROLE.sub(self.role, source)

    def markdown(self, source: str) -> str:
        """Convert one markdown cell (directives, labels, roles)."""
        return self.pieces(parse(source))

    def pieces(self, pieces: Iterable[Piece]) -> str:
        """Convert parsed markdown: each directive on its own, the text between them as a whole."""
        out = []
        for piece in pieces:
            if isinstance(piece, Directive):
                out.extend(self.directive(piece).splitlines())
            else:  # converted together: a role may span lines
                out.extend(self.text("\n".join(x for x in piece.text.splitlines() if not TARGET.match(x))).splitlines())
        return "\n".join(out).strip("\n")

    def directive(self, block: Directive) -> str:
        name, argument, options = block.name, block.argument, block.options
        inner = self.pieces(block.children)
        if name == "exercise":
            label = options.get("label")
            number = find_label(label)[2] if label else "Exercise"
            title = f": {self.text(argument)}" if argument else ""
            return f"#### {number}{title}\n\n{inner}"
        if name == "solution":
            number = find_label(argument)[2]
            return f"<details>\n<summary>Solution to {number.lower()}</summary>\n\n{inner}\n\n</details>"
        if name == "solution-start":
            number = find_label(argument)[2]
            return f"**Solution to {number.lower()}** (the folded code cells below; double-click one to open it)."
        if name == "solution-end":
            return ""
        if name in ADMONITIONS:
            title = self.text(argument) if argument else name.capitalize()
            if "dropdown" in options.get("class", "").split():
                return f"<details>\n<summary>{title}</summary>\n\n{inner}\n\n</details>"
            quoted = "\n".join(f"> {x}" if x else ">" for x in inner.splitlines())
            return f"> **{title}**\n>\n{quoted}"
        raise ColabError(f"{self.doc}: the MyST directive {{{name}}} has no Colab form")


def banner(doc: str, title: str) -> str:
    return (
        f"*This is the Colab edition of **{title}**, a chapter of the gumbel-lite book "
        f"([read it rendered]({page_url(doc)})).* Run the first code cell: on Colab it fetches the "
        "book's repository, installs the `gumbel_lite` package from it and moves into its `book/` folder, "
        "so that every path below works. Long runs are faster on a GPU: *Runtime > Change runtime type*."
    )


def colab_edition(path: Path) -> nbformat.NotebookNode:
    """The Colab edition of one chapter notebook."""
    nb = nbformat.read(path, as_version=4)
    doc = path.relative_to(ROOT).with_suffix("").as_posix()
    convert = Converter(doc, glue_values(nb))
    cells, solution = [], None
    for cell in nb.cells:
        header = cell.metadata.get("gumbel_lite", {}).get("header")
        if header == "badge":
            cells.append(nbformat.v4.new_markdown_cell(banner(doc, document_index()[doc]["title"])))
            continue
        if cell.cell_type == "markdown":
            pieces = parse(cell.source)
            source = convert.pieces(pieces)
            for block in walk(pieces):  # in written order: the last start or end decides
                if block.name == "solution-start":  # the code cells after it are folded
                    solution = find_label(block.argument)[2].lower()
                elif block.name == "solution-end":
                    solution = None
            leftover = RAW_MYST.search(source)
            if leftover:
                raise ColabError(f"{doc}: raw MyST left in a Colab cell: {source[leftover.start() : leftover.end() + 40]!r}")
            if source.strip():
                cells.append(nbformat.v4.new_markdown_cell(source))
            continue
        tags = [t for t in cell.metadata.get("tags", []) if t == "parameters"]
        metadata = {"tags": tags} if tags else {}
        source = cell.source
        if header == "setup":  # the first lines of any bug report from a Colab runtime
            source += "\ngl.doctor(device)  # the device, its precision and why, versions, data, speed"
        if solution:
            metadata["cellView"] = "form"
            source = f"# @title Solution to {solution} (double-click to show the code)\n{source}"
        elif cell.metadata.get("nbgrader", {}).get("solution"):  # a lab's solution cell
            metadata["cellView"] = "form"
            source = f"# @title Solution (double-click to show the code, or replace it with yours)\n{source}"
        cells.append(nbformat.v4.new_code_cell(source, metadata=metadata))
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        if figure.get("name"):
            number = document_index()[doc]["labels"][figure["name"]][1]
            cells.append(nbformat.v4.new_markdown_cell(f"**{number}.** {convert.text(figure.get('caption', ''))}"))
    edition = nbformat.v4.new_notebook(cells=cells)
    edition.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True},
    }
    if path.stem in GPU_CHAPTERS:
        edition.metadata["accelerator"] = "GPU"
    for n, c in enumerate(edition.cells):  # stable ids: regenerating gives identical files
        c["id"] = f"cell-{n:03d}"
    return edition


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if colab/ is not what this script writes")
    args = parser.parse_args(argv)
    chapters = sorted(BOOK.glob("[0-9]*.ipynb"))
    expected = {OUT / p.name: nbformat.writes(colab_edition(p)).rstrip("\n") + "\n" for p in chapters}
    stale = [p for p, text in expected.items() if not p.exists() or p.read_text() != text]
    extra = [p for p in OUT.glob("*.ipynb") if p not in expected]
    if args.check:
        for p in stale:
            print(f"{p.relative_to(ROOT)} is stale or missing", file=sys.stderr)
        for p in extra:
            print(f"{p.relative_to(ROOT)} has no chapter", file=sys.stderr)
        if stale or extra:
            print("run `python scripts/make_colab_notebooks.py` to regenerate the Colab editions", file=sys.stderr)
            return 1
        print(f"Colab editions OK ({len(expected)} notebooks)")
        return 0
    OUT.mkdir(exist_ok=True)
    for p in extra:
        p.unlink()
    for p in stale:
        p.write_text(expected[p])
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
