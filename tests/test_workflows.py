"""The GitHub workflows run what runs here: the Makefile's targets, the command of .ci/run.

ci.yml and pages.yml may only call make targets that exist, ci.yml runs the same command as
.ci/run, the data cache it keeps is the Makefile's data folder (which the `data` target fills by
downloading when no offline copy exists), and the preface names the address the book is
published at.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
CI_RUN = ".ci/run"

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
# A make of our own, not a sub-make of the `make test` that may be running these tests.
MAKE_ENV = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "GUMBEL_LITE_DATA"}}


def load_workflow(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def run_commands(workflow: dict) -> list[str]:
    return [step["run"] for step in steps(workflow) if "run" in step]


def uses(workflow: dict) -> list[str]:
    return [step["uses"].split("@")[0] for step in steps(workflow) if "uses" in step]


def simple_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script: words, split on newlines, ;, &&, || and |."""
    commands = []
    for line in script.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for part in re.split(r"&&|\|\||[;|]", line):
            words = shlex.split(part, comments=True)
            if words:
                commands.append(words)
    return commands


def make_calls(script: str) -> list[list[str]]:
    """The targets of every `make` call of a script (options and VAR=value left out)."""
    calls = []
    for words in simple_commands(script):
        if words[0] == "exec":
            words = words[1:]
        if words and words[0] == "make":
            calls.append([w for w in words[1:] if not w.startswith("-") and "=" not in w])
    return calls


def makefile_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([^\s#][^:=#]*?)\s*::?(?!=)", line)
        if match:
            targets |= {name for name in match.group(1).split() if not name.startswith((".", "$"))}
    return targets


def ci_run_script() -> str:
    return (ROOT / CI_RUN).read_text()


def test_makefile_targets_are_parsed():
    targets = makefile_targets()
    assert {"book", "test", "install", "data", "browser"} <= targets
    assert not {"PYTHON", "VENV", "TORCH_PIN", "export GUMBEL_LITE_DATA"} & targets


def test_ci_run_calls_make_test():
    assert make_calls(ci_run_script()) == [["test"]]
    assert (ROOT / CI_RUN).stat().st_mode & 0o111, ".ci/run must be executable (ci.yml runs it directly)"


@pytest.mark.parametrize("name", ["ci.yml", "pages.yml"])
def test_every_run_step_only_calls_existing_make_targets(name):
    workflow = load_workflow(name)
    commands = run_commands(workflow)
    assert commands, f"{name} has no run step"
    targets = makefile_targets()
    for script in commands:
        for words in simple_commands(script):
            assert words[0] == "make" or words == [CI_RUN], f"{name}: `{shlex.join(words)}` is neither a make call nor {CI_RUN}"
        calls = make_calls(script) + (make_calls(ci_run_script()) if [CI_RUN] in simple_commands(script) else [])
        assert calls, f"{name}: run step `{script.strip()}` calls no make target"
        for call in calls:
            assert call, f"{name}: `make` without a target in `{script.strip()}` (name the target)"
            missing = set(call) - targets
            assert not missing, f"{name} calls make targets the Makefile lacks: {sorted(missing)}"


def test_ci_runs_the_same_command_as_ci_run():
    workflow = load_workflow("ci.yml")
    assert {"push", "pull_request"} <= set(workflow["on"])
    commands = [simple_commands(script) for script in run_commands(workflow)]
    same = [c for c in commands if c == [[CI_RUN]] or make_calls("\n".join(map(shlex.join, c))) == make_calls(ci_run_script())]
    assert len(same) == 1, f"ci.yml must run {CI_RUN} (or its command, `make test`) exactly once; its run steps: {commands}"
    assert "actions/setup-python" in uses(workflow)
    setup = next(s for s in steps(workflow) if s.get("uses", "").startswith("actions/setup-python"))
    assert str(setup["with"]["python-version"]) == "3.11"


@needs_make
def test_ci_caches_the_makefile_data_folder():
    """The folder ci.yml caches is where `make data` puts the datasets when $GUMBEL_LITE_DATA is unset."""
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", "print-data-dir: ; @echo $(GUMBEL_LITE_DATA)", "print-data-dir"],
        cwd=ROOT,
        env=MAKE_ENV,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    data_dir = Path(out).relative_to(ROOT).as_posix()
    caches = [s["with"] for s in steps(load_workflow("ci.yml")) if s.get("uses", "").startswith("actions/cache")]
    assert [c["path"] for c in caches] == [data_dir]
    assert "${{" not in caches[0]["key"], "the datasets never change: a constant cache key"


@needs_make
def test_make_data_downloads_without_the_offline_copy(tmp_path):
    """On GitHub there is no offline copy of CIFAR: `make data` falls back to downloading it."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python").write_text('#!/bin/sh\necho python "$@"\n')
    (fake_bin / "python").chmod(0o755)
    data = tmp_path / "data"
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "-o", "install", "-o", ".venv/.installed", "data",
         f"BIN={fake_bin}", f"OFFLINE_DATASETS={tmp_path / 'absent.py'}", f"GUMBEL_LITE_DATA={data}"],
        cwd=ROOT,
        env=MAKE_ENV,
        capture_output=True,
        text=True,
        check=True,
    ).stdout  # fmt: skip
    for name in ("cifar10", "cifar100"):
        assert f"python -m gumbel_lite prepare {name} --download --data-root {data}" in out


def pages_url() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    owner, repo = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)/?", config["repository"]["url"]).groups()
    return f"https://{owner}.github.io/{repo}/"


def test_pages_workflow_builds_with_make_book_and_deploys_the_html():
    workflow = load_workflow("pages.yml")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert workflow["on"]["push"]["branches"] == [config["repository"]["branch"]]
    assert [call for script in run_commands(workflow) for call in make_calls(script)] == [["book"]]
    assert {"actions/configure-pages", "actions/upload-pages-artifact", "actions/deploy-pages"} <= set(uses(workflow))
    upload = next(s for s in steps(workflow) if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    [deploy] = [job for job in workflow["jobs"].values() if "actions/deploy-pages" in uses({"jobs": {"deploy": job}})]
    assert deploy["environment"]["name"] == "github-pages"


def test_book_names_its_published_address():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["html"]["baseurl"] == pages_url()
    assert pages_url() in (ROOT / "book" / "01_preface.md").read_text()
