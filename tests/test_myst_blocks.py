"""The reader of MyST fenced directives that the book's scripts share (scripts/myst_blocks.py)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from myst_blocks import Directive, MystSyntaxError, Spans, Text, parse, walk  # noqa: E402

CHAPTER = """# A chapter

(sec-intro)=
Some text with a {term}`role`.

```{exercise} ★★ · 20 min · Goal 2
:label: ex-one

*Coding.* Do it.
```

````{solution-start} ex-one
:class: dropdown
````

The solution's text.

````{solution-end}
````
Closing words, no newline at the end"""


def test_joining_the_pieces_gives_the_text_back():
    for text in (CHAPTER, CHAPTER + "\n", "", "\n\n", "only text\n", "```{note}\n```", "a\r\n```{note}\r\nb\r\n```\r\nc"):
        pieces = parse(text)
        assert "".join(p.text for p in pieces) == text
        assert all(text[p.start : p.end] == p.text for p in pieces)
        assert [p.end for p in pieces[:-1]] == [p.start for p in pieces[1:]]


def test_text_and_directives_alternate_with_their_names_arguments_and_lines():
    pieces = parse(CHAPTER)
    assert [type(p).__name__ for p in pieces] == ["Text", "Directive", "Text", "Directive", "Text", "Directive", "Text"]
    exercise, start, end = (p for p in pieces if isinstance(p, Directive))
    assert (exercise.name, exercise.argument, exercise.fence, exercise.line) == ("exercise", "★★ · 20 min · Goal 2", "```", 6)
    assert exercise.body == "\n*Coding.* Do it.\n"
    assert exercise.text.endswith("Do it.\n```\n")
    assert (start.name, start.argument, start.fence, start.body) == ("solution-start", "ex-one", "````", "")
    assert (end.name, end.argument, end.options) == ("solution-end", "", {})
    assert pieces[0] == Text("# A chapter\n\n(sec-intro)=\nSome text with a {term}`role`.\n\n", 0, 58, 1)
    assert pieces[-1].text == "Closing words, no newline at the end"


def test_options_are_the_key_value_lines_right_after_the_opening_line():
    (block,) = parse(":::{admonition}   A title  \n:class: dropdown tip \n:name:x\nBody line.\n\n:label: not-an-option\n:::\n")
    assert block.argument == "A title"
    assert block.options == {"class": "dropdown tip", "name": "x"}
    assert block.body == "Body line.\n\n:label: not-an-option\n"
    assert block.head == ":::{admonition}   A title  \n:class: dropdown tip \n:name:x\n"
    assert block.tail == ":::\n"


def test_a_longer_fence_holds_nested_directives_with_offsets_in_the_whole_text():
    text = "Intro\n`````{exercise}\n:label: ex-a\n\nAsk.\n\n````{hint}\n```{note}\nDeep.\n```\n````\nAfter.\n`````\nEnd\n"
    intro, exercise, end = parse(text)
    assert (intro.text, end.text) == ("Intro\n", "End\n")
    assert exercise.fence == "`````" and exercise.options == {"label": "ex-a"}
    hint = next(p for p in exercise.children if isinstance(p, Directive))
    note = next(p for p in hint.children if isinstance(p, Directive))
    assert [d.name for d in walk(parse(text))] == ["exercise", "hint", "note"]
    assert (hint.line, note.line, note.body) == (7, 8, "Deep.\n")
    for block in (hint, note):
        assert text[block.start : block.end] == block.text
        assert text[block.body_start : block.body_end] == block.body
    assert "".join(p.text for p in exercise.children) == exercise.body


def test_a_fence_closes_at_the_first_line_of_as_many_or_more_of_its_character():
    # a colon fence is not closed by backticks, and a longer line closes too
    (block, after) = parse("::::{note}\n```\n:::\n  ::::::  \nafter\n")
    assert block.body == "```\n:::\n" and block.tail == "  ::::::  \n"
    assert after.text == "after\n"


def test_a_directive_inside_a_plain_code_block_is_text():
    text = "````markdown\n```{exercise}\n:label: ex-shown\n```\n````\n~~~\n```{note}\n~~~\n"
    assert parse(text) == [Text(text, 0, len(text), 1)]
    assert parse("```python\nunclosed code block\n")[0].text == "```python\nunclosed code block\n"


def test_an_unclosed_fence_is_an_error_that_names_its_line():
    with pytest.raises(MystSyntaxError) as error:
        parse("Text\n\n```{solution} ex-a\nBody\n")
    assert str(error.value).startswith("line 3: the {solution} directive opened by '```{solution} ex-a' is never closed")
    assert error.value.line == 3
    with pytest.raises(MystSyntaxError, match=r"^line 4: .*\{note\}.*3 or more '`'"):  # nested: the line in the whole text
        parse("````{exercise}\n:label: ex-a\n\n```{note}\nnever closed\n````\n")
    with pytest.raises(ValueError, match="line 1"):  # a ValueError, for callers that catch those
        parse("::::{admonition} Title\n:::\n")


def test_with_body_rebuilds_the_directive_around_a_new_body():
    (block,) = parse("```{note} Title\n:class: tip\nOld body.\n```\n")
    assert block.with_body("New.\n") == "```{note} Title\n:class: tip\nNew.\n```\n"
    assert block.with_body(block.body) == block.text


def test_spans_follow_solution_start_and_end_across_cells():
    spans = Spans()
    first = list(spans.follow(parse(CHAPTER.split("\nThe solution's text.")[0])))
    assert [inside for _, inside in first] == [False, False, False, True]
    assert spans.inside and spans.opened.argument == "ex-one"
    assert [inside for _, inside in spans.follow(parse("Code cells come next.\n"))] == [True]
    middle = "Still the solution.\n\n````{solution-end}\n````\n\nAn exercise again.\n"
    assert [(type(p).__name__, inside) for p, inside in spans.follow(parse(middle))] == [
        ("Text", True),
        ("Directive", True),
        ("Text", False),
    ]
    assert not spans.inside and spans.opened is None
    assert Spans("exercise").start_name == "exercise-start"


def test_spans_inside_nested_directives_follow_the_order_they_are_written():
    spans = Spans()
    (outer,) = parse("````{note}\n```{solution-start} ex-a\n```\nhidden\n````\n")
    ((note, inside),) = spans.follow([outer])
    assert not inside and not spans.inside
    assert [inside for _, inside in spans.follow(note.children)] == [True, True]
    assert spans.inside
