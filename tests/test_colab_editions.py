"""The Colab editions: MyST written out as plain markdown, nothing raw left, up to date."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_colab_notebooks", ROOT / "scripts" / "make_colab_notebooks.py")
colab = importlib.util.module_from_spec(spec)
spec.loader.exec_module(colab)

DOC = "book/08_ablations"


@pytest.fixture
def convert():
    return colab.Converter(DOC, {"acc": 35.64, "name": "ASLP", "lr": 1000.0})


def test_glue_values_are_written_with_their_format(convert):
    text = convert.markdown("ASLP ({glue:text}`name`) reaches {glue:text}`acc:.1f` % at\nlr {glue:text}`lr:g`.")
    assert text == "ASLP (ASLP) reaches 35.6 % at\nlr 1000."


def test_a_missing_glue_value_is_an_error(convert):
    with pytest.raises(colab.ColabError, match="glue key 'nope'"):
        convert.markdown("{glue:text}`nope`")


def test_roles_become_text_or_links(convert):
    text = convert.markdown("a {term}`dynamic\nrescale <Dynamic rescale>` and {term}`ASLP`, {cite}`dupont2022extracting`")
    assert text.startswith("a dynamic\nrescale and ASLP, ([Dupont et al., 2022](")
    assert text.endswith("/book/references.html))")
    link = convert.markdown("see {doc}`the anatomy <10_anatomy>`")
    assert link == f"see [the anatomy]({colab.book_url()}/book/10_anatomy.html)"


def test_references_to_figures_and_exercises_are_numbered(convert):
    index = colab.document_index()[DOC]["labels"]
    figure = next(label for label, (kind, _) in index.items() if kind == "figure")
    exercise = next(label for label, (kind, _) in index.items() if kind == "exercise")
    assert convert.markdown(f"{{numref}}`{figure}`") == index[figure][1]
    assert convert.markdown(f"{{ref}}`{exercise}`") == index[exercise][1]
    assert index[exercise][1].startswith("Exercise ")


def test_exercises_become_headings_and_solutions_fold(convert):
    index = colab.document_index()[DOC]["labels"]
    label = next(label for label, (kind, _) in index.items() if kind == "exercise")
    number = index[label][1]
    exercise = f"```{{exercise}}\n:label: {label}\n\nHow far?\n```"
    source = exercise + f"\n\n```{{solution}} {label}\n:class: dropdown\n\nFar: {{glue:text}}`acc:.0f`.\n```"
    text = convert.markdown(source)
    assert text.startswith(f"#### {number}\n\nHow far?")
    assert f"<details>\n<summary>Solution to {number.lower()}</summary>\n\nFar: 36.\n\n</details>" in text


def test_admonitions_become_block_quotes_and_labels_go(convert):
    text = convert.markdown("(thm-x)=\n:::{admonition} Theorem\n:class: important\nLine $a$.\n\nMore.\n:::")
    assert text == "> **Theorem**\n>\n> Line $a$.\n>\n> More."


def test_an_unknown_directive_or_role_is_an_error(convert):
    with pytest.raises(colab.ColabError, match="directive"):
        convert.markdown("```{tab-set}\nx\n```")
    with pytest.raises(colab.ColabError, match="role"):
        convert.markdown("{eq}`eq-1`")


@pytest.mark.parametrize("chapter", sorted((ROOT / "book").glob("[0-9]*.ipynb")), ids=lambda p: p.stem)
def test_each_edition_is_current_plain_markdown_without_outputs(chapter):
    stored = nbformat.read(ROOT / "colab" / chapter.name, as_version=4)
    assert nbformat.writes(stored) == nbformat.writes(colab.colab_edition(chapter)), "run scripts/make_colab_notebooks.py"
    assert stored.cells[0].source.startswith("# ") and "Colab edition" in stored.cells[1].source
    for cell in stored.cells:
        if cell.cell_type == "markdown":
            assert not colab.RAW_MYST.search(cell.source), cell.source[:200]
        else:
            assert cell.outputs == [] and cell.execution_count is None
    install = next(c for c in stored.cells if c.cell_type == "code")
    assert "git" in install.source and 'os.chdir("gumbel-lite/book")' in install.source
    assert any("parameters" in c.metadata.get("tags", []) for c in stored.cells)


@pytest.mark.parametrize("chapter", sorted(p.stem for p in (ROOT / "book").glob("*.ipynb")))
def test_every_code_cell_of_a_solution_span_is_folded(chapter):
    """The code cells between {solution-start} and {solution-end}, as the student copies see them, are folded on Colab."""
    import myst_blocks  # on sys.path once make_colab_notebooks is loaded

    book = nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4)
    spans, expected = myst_blocks.Spans(), 0
    for cell in book.cells:
        if cell.cell_type == "markdown":
            for _ in spans.follow(myst_blocks.parse(cell.source)):
                pass
        elif spans.inside:
            expected += 1
    edition = nbformat.read(ROOT / "colab" / f"{chapter}.ipynb", as_version=4)
    folded = [c for c in edition.cells if c.cell_type == "code" and c.source.startswith("# @title Solution to")]
    assert len(folded) == expected
    assert all(c.metadata.get("cellView") == "form" for c in folded)
