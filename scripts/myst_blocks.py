"""Read the fenced MyST directives of a markdown text: the one parser of the book's scripts.

The book writes exercises, solutions and admonitions as MyST directives::

    ```{exercise} ★★ · 20 min · Goal 2
    :label: ex-sf-baseline

    Show that ...
    ```

:func:`parse` cuts a markdown string into a list of pieces, :class:`Text` and :class:`Directive`,
that cover it exactly: ``"".join(piece.text for piece in parse(s)) == s``. A directive knows its
name, argument, options, body and fence, its offsets in the string (so that a caller can rebuild
the text around a changed body, see :meth:`Directive.with_body`) and the pieces of its body.

The grammar, which is MyST's for what the book uses:

* A directive opens with a line of 3 or more backticks or colons (its fence), then ``{name}``
  and an optional argument, as in the example above. Blanks before the fence are allowed.
* The ``:key: value`` lines right after the opening line are its options.
* It closes at the first later line made only of the fence's character, at least as many of them
  as in the fence. The lines in between, after the options, are its body. A line that could open
  another directive does not nest inside a fence of the same length: a directive holds another by
  a longer fence (four backticks around three). The body is read again as markdown, for the
  directives inside it (:attr:`Directive.children`).
* A directive that is never closed is an error, :class:`MystSyntaxError`, which names the line.
* A plain code block (three backticks then ``python``, or ``~~~``) is text: nothing inside it is
  read as a directive. One that is never closed runs to the end, as in CommonMark.

sphinx-exercise's span form, ``{solution-start}`` ... ``{solution-end}``, is two ordinary
directives (each closed by its own fence) with the solution's cells between them; the span may
run over several notebook cells. :class:`Spans` follows it from one cell to the next.

Standard library only; the scripts import it as ``myst_blocks`` from ``scripts/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = ["Directive", "MystSyntaxError", "Piece", "Spans", "Text", "parse", "walk"]

OPENING = re.compile(r"^[ \t]*(?P<fence>`{3,}|:{3,})[ \t]*\{(?P<name>[\w:-]+)\}(?P<argument>.*)$")
OPTION = re.compile(r"^[ \t]*:(?P<key>[\w-]+):\s*(?P<value>.*)$")
CODE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})")


class MystSyntaxError(ValueError):
    """The markdown cannot be read: a directive is never closed. ``line`` is 1-based."""

    def __init__(self, message: str, line: int):
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class Text:
    """Markdown between directives, exactly as written (plain code blocks included)."""

    text: str
    start: int  # offset of the first character in the parsed string
    end: int  # offset just past the last one
    line: int  # 1-based line number of its first line


@dataclass(frozen=True)
class Directive:
    """One fenced directive, from its opening line to its closing fence (newline included)."""

    name: str  # "exercise", "solution-start", "admonition", ...
    argument: str  # the rest of the opening line, stripped ("" when none)
    options: dict[str, str]  # the ``:key: value`` lines, values stripped
    body: str  # the lines between the options and the closing fence, as written
    fence: str  # the opening fence, e.g. "```" or "::::"
    text: str  # the whole directive as written
    start: int  # offsets in the parsed string: the directive is text[start:end] ...
    end: int
    body_start: int  # ... and its body text[body_start:body_end]
    body_end: int
    line: int  # 1-based line number of the opening line
    children: tuple[Piece, ...] = field(default=(), repr=False)  # the body, parsed (same offsets)

    @property
    def head(self) -> str:
        """The opening line and the option lines."""
        return self.text[: self.body_start - self.start]

    @property
    def tail(self) -> str:
        """The closing fence line."""
        return self.text[self.body_end - self.start :]

    def with_body(self, body: str) -> str:
        """The directive as written, with ``body`` in place of its body."""
        return self.head + body + self.tail


Piece = Text | Directive


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened by ``fence``: only that character, at least as many."""
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def parse(text: str) -> list[Piece]:
    """Cut ``text`` into text and directives, nested directives included (see the module's doc).

    Joining the ``text`` of the pieces gives ``text`` back. Raises :class:`MystSyntaxError` for a
    directive that is never closed, at any depth.
    """
    return _parse(text, 0, len(text), 1)


def _parse(source: str, start: int, end: int, first_line: int) -> list[Piece]:
    """The pieces of ``source[start:end]``, whose first line is line ``first_line`` of ``source``."""
    chunk = source[start:end]
    lines, bare = chunk.splitlines(keepends=True), chunk.splitlines()
    offsets = [start]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    pieces: list[Piece] = []
    plain = 0  # index of the first line of the text not yet emitted
    i = 0
    while i < len(lines):
        opening = OPENING.match(bare[i])
        if not opening:
            code = CODE.match(bare[i])
            i += 1
            if code:  # a plain code block: skip to its closing fence, or to the end
                while i < len(lines) and not _closes(bare[i], code.group("fence")):
                    i += 1
                i += 1
            continue
        fence, name = opening.group("fence"), opening.group("name")
        close = next((j for j in range(i + 1, len(lines)) if _closes(bare[j], fence)), None)
        if close is None:
            raise MystSyntaxError(
                f"the {{{name}}} directive opened by {bare[i].strip()!r} is never closed"
                f" (no later line of {len(fence)} or more {fence[0]!r} alone)",
                first_line + i,
            )
        options: dict[str, str] = {}
        first_body = i + 1
        while first_body < close and (option := OPTION.match(bare[first_body])):
            options[option.group("key")] = option.group("value").strip()
            first_body += 1
        if plain < i:
            pieces.append(Text(source[offsets[plain] : offsets[i]], offsets[plain], offsets[i], first_line + plain))
        body_start, body_end = offsets[first_body], offsets[close]
        pieces.append(
            Directive(
                name=name,
                argument=opening.group("argument").strip(),
                options=options,
                body=source[body_start:body_end],
                fence=fence,
                text=source[offsets[i] : offsets[close + 1]],
                start=offsets[i],
                end=offsets[close + 1],
                body_start=body_start,
                body_end=body_end,
                line=first_line + i,
                children=tuple(_parse(source, body_start, body_end, first_line + first_body)),
            )
        )
        i = plain = close + 1
    if plain < len(lines):
        pieces.append(Text(source[offsets[plain] : end], offsets[plain], end, first_line + plain))
    return pieces


def walk(pieces: Iterable[Piece]) -> Iterator[Directive]:
    """Every directive among ``pieces`` and inside them, in the order they are written."""
    for piece in pieces:
        if isinstance(piece, Directive):
            yield piece
            yield from walk(piece.children)


class Spans:
    """Follows sphinx-exercise's gated spans, ``{solution-start}`` … ``{solution-end}``.

    A solution that holds code cells is written as a span: a ``{solution-start}`` directive (its
    argument the exercise's label), the solution's cells, and a ``{solution-end}`` directive. The
    span may run over several notebook cells, so one ``Spans`` reads every markdown cell in order
    and remembers whether the last one ended inside a span (:attr:`inside`), which is what a
    code cell between two markdown cells needs to know. ``kind="exercise"`` follows
    ``{exercise-start}`` … ``{exercise-end}`` instead.
    """

    def __init__(self, kind: str = "solution") -> None:
        self.start_name, self.end_name = f"{kind}-start", f"{kind}-end"
        self.opened: Directive | None = None  # the start directive of the open span

    @property
    def inside(self) -> bool:
        """Whether what was read so far ends inside a span."""
        return self.opened is not None

    def follow(self, pieces: Iterable[Piece]) -> Iterator[tuple[Piece, bool]]:
        """Each piece with whether it belongs to a span, its start and end directives included.

        A generator: the state changes as the pieces are taken, so a caller that reads a
        directive's children (with this same ``Spans``) before taking the next piece follows
        spans through nested directives in the order they are written.
        """
        for piece in pieces:
            if isinstance(piece, Directive) and piece.name == self.start_name:
                self.opened = piece
                yield piece, True
            elif isinstance(piece, Directive) and piece.name == self.end_name:
                self.opened = None
                yield piece, True
            else:
                yield piece, self.inside
