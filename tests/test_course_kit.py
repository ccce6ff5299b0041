"""The course kit: every exercise rated and in chapter 11's table, the problem set and project
consistent with the book, and the lab a valid nbgrader assignment whose student copy is stubbed."""

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

import gumbel_lite as gl

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / "book" / "11_course_kit.md"
LAB = ROOT / "book" / "13_lab_masked_layer.ipynb"


def load(name):
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


table = load("exercise_table")
students = load("make_student_notebooks")
colab = load("make_colab_notebooks")


def section(title: str) -> str:
    text = KIT.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_every_exercise_has_a_rating_and_a_known_goal():
    exercises = table.all_exercises()
    assert len(exercises) >= 40
    assert table.problems(exercises, table.learning_goals()) == []
    assert sorted(table.learning_goals()) == [1, 2, 3, 4, 5]


def test_an_unrated_exercise_is_reported(tmp_path):
    chapter = tmp_path / "99_x.md"
    unrated = "```{exercise}\n:label: ex-x\n\n*Coding.* Do it.\n```\n\n"
    chapter.write_text(unrated + "```{exercise} ★★★★ · 5 min · Goal 1\n:label: ex-y\n\nMore.\n```\n")
    found = table.exercises_in(chapter)
    assert [(e.label, e.stars, e.coding) for e in found] == [("ex-x", None, True), ("ex-y", None, False)]
    assert len(table.problems(found, {1: "Sample"})) == 2
    rated = table.exercises_in(_write(tmp_path / "98_y.md", "```{exercise} ★★ · 20 min · Goal 6\n:label: ex-z\n\nQ.\n```\n"))
    assert (rated[0].stars, rated[0].minutes, rated[0].goal) == (2, 20, 6)
    assert "goal 6" in table.problems(rated, {1: "Sample"})[0]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_table_in_chapter_11_lists_every_exercise_once_and_is_current():
    text = KIT.read_text()
    exercises = table.all_exercises()
    assert table.with_table(text, table.table(exercises, table.learning_goals())) == text, "run scripts/exercise_table.py"
    block = text[text.index(table.BEGIN) : text.index(table.END)]
    listed = re.findall(r"^\| \{ref\}`([\w-]+)`", block, re.M)
    assert listed == [e.label for e in exercises]
    for e in exercises:
        assert re.search(rf"^\| \{{ref\}}`{e.label}` \| .* \| {'★' * e.stars} \| {e.minutes} min \| {e.goal}\. ", block, re.M)


def test_the_rating_is_the_title_of_the_exercise_in_every_chapter():
    # The Colab editions show it in the exercise's heading.
    for path in sorted((ROOT / "colab").glob("*.ipynb")):
        lines = [line for c in nbformat.read(path, as_version=4).cells for line in c.source.splitlines()]
        headings = [line for line in lines if line.startswith("#### Exercise")]
        assert headings and all(re.search(r": ★{1,3} · \d+ min · Goal \d$", h) for h in headings), path.name


def test_every_exercise_the_kit_names_exists():
    labels = {e.label for e in table.all_exercises()}
    named = set(re.findall(r"\{ref\}`(ex-[\w-]+)`", KIT.read_text()))
    assert named and named <= labels, named - labels


def test_the_problem_set_adds_up():
    problems = section("The graded problem set")
    rows = re.findall(r"^\| \d\. .*\| (\d+) \|$", problems, re.M)
    assert sum(map(int, rows)) == 100
    rubric = problems[problems.index("**Rubric.**") :]
    for number, points in enumerate(rows, start=1):
        assert f"{number}. *" in rubric and f"({points})" in rubric
    minutes = {e.label: e.minutes for e in table.all_exercises()}
    chosen = set(re.findall(r"\{ref\}`(ex-[\w-]+)`", problems.split("**Rubric.**")[0]))
    assert sum(minutes[label] for label in chosen) == 150, "the text says two and a half hours"


def test_the_week_plan_has_four_lectures_two_labs_and_a_project():
    plan = section("The two-week plan")
    sessions = re.findall(r"^\| (Lecture \d|Lab \d|Project)\b", plan, re.M)
    assert sessions == ["Lecture 1", "Lecture 2", "Lab 1", "Lecture 3", "Lecture 4", "Lab 2", "Project"]
    for session in ("Lecture 1", "Lecture 2", "Lab 1", "Lecture 3", "Lecture 4", "Lab 2"):
        assert f"**{session}: " in plan  # each session has its own timing table


def test_the_project_run_times_are_the_measured_ones():
    project = section("The project")
    records = [json.loads(line) for line in (ROOT / "data" / "results" / "cpu-budget.jsonl").read_text().splitlines()]
    chosen = {(m, gl.config.CPU_MASK_LR[m]) for m in ("aslp", "edge_popup")}  # the CPU grid's rates
    assert all(f"{m!r}, {lr}" in project.replace('"', "'") for m, lr in chosen)  # the project's code uses them
    configs = [(r["config"], r) for r in records]
    project_cells = {c.run_id for c in gl.grid("cpu-budget") + gl.grid("cpu-budget-baselines")}  # as the project's code
    runs = {
        c["method"]: r
        for c, r in configs
        if r["run_id"] in project_cells and c["epochs"] == 10 and (c["method"], c["mask_lr"]) in chosen
    }
    assert set(runs) == {"aslp", "edge_popup"}
    for run, minutes in ((runs["aslp"], 17), (runs["edge_popup"], 16)):
        wall, epochs = run["wall_time"], sum(run["history"]["epoch_time"])
        assert f"{wall:,.0f} s ({minutes} minutes)" in project
        assert f"{epochs:,.0f} s" in project
        assert round(wall / 60) == minutes and abs(wall / epochs - 1.15) < 0.01  # "about 15 %"
    bench = json.loads((ROOT / "data" / "results" / "benchmark-cpu.json").read_text())["images_per_second"]
    ratio = bench["conv2"]["bf16_channels_last"] / bench["conv6"]["bf16_channels_last"]
    assert f"{ratio:.1f} times as many images per" in project
    assert "scripts/throughput.py --device cuda" in project


def test_the_lab_is_in_the_teaching_part_of_the_book():
    parts = {p["caption"]: [c["file"] for c in p["chapters"]] for p in yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"]}
    assert "book/13_lab_masked_layer" in parts["Teaching"]


def test_the_lab_is_a_valid_nbgrader_assignment():
    nb = nbformat.read(LAB, as_version=4)
    assert students.is_graded(nb)
    assert students.metadata_problems(nb) == []
    graded = [c for c in nb.cells if students.nbgrader(c).get("grade")]
    auto = sum(students.nbgrader(c)["points"] for c in graded if c.cell_type == "code")
    by_hand = sum(students.nbgrader(c)["points"] for c in graded if c.cell_type == "markdown")
    assert (auto, by_hand) == (90, 10)
    intro = nb.cells[0].source + "".join(c.source for c in nb.cells[1:5] if c.cell_type == "markdown")
    assert sum(map(int, re.findall(r"^\| \d \| .* \| (\d+) \|$", intro, re.M))) == 100
    for cell in nb.cells:
        meta = students.nbgrader(cell)
        if meta.get("solution") and cell.cell_type == "code":
            assert students.SOLUTION[0] in cell.source
        if meta.get("grade") and cell.cell_type == "code":
            assert meta["locked"] and not meta["solution"]
        if cell.cell_type == "code":  # the instructor version ran: every test passed
            assert cell.execution_count and not [o for o in cell.outputs if o.output_type == "error"]


def test_the_student_copy_of_the_lab_has_stubs_and_no_answers():
    instructor = nbformat.read(LAB, as_version=4)
    student = students.student_version(instructor)
    assert students.leftovers(student) == []
    assert len(student.cells) == len(instructor.cells)
    for mine, theirs in zip(student.cells, instructor.cells):
        meta = students.nbgrader(theirs)
        if meta.get("solution") and theirs.cell_type == "code":
            stubbed = students.replace_regions(theirs.source, students.SOLUTION, students.CODE_STUB.split("\n"))[0]
            assert mine.source == stubbed and "raise NotImplementedError()" in mine.source
            assert "torch.log1p" not in mine.source and "F.conv2d" not in mine.source
        elif meta.get("solution"):
            assert mine.source == "YOUR ANSWER HERE"
        elif meta.get("grade"):
            assert mine.source == students.replace_regions(theirs.source, students.HIDDEN_TESTS, [])[0].rstrip("\n")
            last = ast.parse(mine.source).body[-1]  # the test cell still ends by reporting
            assert "HIDDEN TESTS" not in mine.source
            assert isinstance(last, ast.Expr) and isinstance(last.value, ast.Call) and last.value.func.id == "print"
        elif "{solution" in theirs.source:  # the exercises at the end: their solutions go
            assert "{solution" not in mine.source and "{exercise}" in mine.source
        else:
            assert mine.source == theirs.source
        assert not mine.get("outputs")


def test_solution_regions_are_replaced_by_nbgraders_stub_with_their_indentation():
    source = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n"
    replaced, found = students.replace_regions(source, students.SOLUTION, students.CODE_STUB.split("\n"))
    assert found
    assert replaced == "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    assert students.replace_regions("a\n", students.SOLUTION, ["x"]) == ("a\n", False)
    for broken in ("### BEGIN SOLUTION\nx\n", "x\n### END SOLUTION\n", "### BEGIN SOLUTION\n### BEGIN SOLUTION\n"):
        with pytest.raises(ValueError):
            students.replace_regions(broken, students.SOLUTION, [])


def test_invalid_nbgrader_metadata_is_reported():
    def cell(meta, source="x = 1", kind="code"):
        c = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
        c.metadata["nbgrader"] = {"schema_version": 3, "grade": False, "solution": False, "locked": False, "task": False, **meta}
        return c

    nb = nbformat.v4.new_notebook(
        cells=[
            cell({"grade": True, "locked": True, "grade_id": "t"}),  # no points
            cell({"solution": True, "grade_id": "t"}),  # duplicate id
            cell({"grade_id": "bad id!", "locked": True}),
            cell({"solution": True, "grade_id": "md"}, "answer", "markdown"),  # written answer not graded
            cell({"grade_id": "s", "locked": True}, "### BEGIN SOLUTION\nx\n### END SOLUTION"),
            nbformat.v4.new_code_cell("### BEGIN HIDDEN TESTS\nassert 1\n### END HIDDEN TESTS"),
        ]
    )
    found = "\n".join(students.metadata_problems(nb))
    expected_problems = ("needs points", "duplicate grade_id", "grade_id must be", "written answer", "not marked as a solution")
    for expected in (*expected_problems, "without nbgrader metadata"):
        assert expected in found, expected


def test_the_colab_edition_of_the_lab_folds_its_solutions():
    edition = colab.colab_edition(LAB)
    forms = [c for c in edition.cells if c.metadata.get("cellView") == "form"]
    solutions = [c for c in nbformat.read(LAB, as_version=4).cells if students.nbgrader(c).get("solution") and c.cell_type == "code"]
    assert len(forms) == len(solutions) and all(c.source.startswith("# @title Solution") for c in forms)
    assert any("<summary>Model answer</summary>" in c.source for c in edition.cells if c.cell_type == "markdown")
