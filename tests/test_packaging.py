"""The two ways to install stay in sync, and the public API is documented."""

import inspect
from pathlib import Path

import yaml

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

import gumbel_lite as gl

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | {d for extra in project["optional-dependencies"].values() for d in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip) - {"-e ."} == wanted
    assert not any(d.startswith("torch==") for d in wanted), "torch must not be pinned in the package"


def test_public_api_has_docstrings():
    for name in gl.__all__:
        obj = getattr(gl, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert obj.__doc__, f"gumbel_lite.{name} has no docstring"
