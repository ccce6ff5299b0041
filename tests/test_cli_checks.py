"""Errors a user can act on: bad values, paths, devices and caches are refused before any work, naming the problem."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gumbel_lite as gl
from gumbel_lite.config import RunConfig
from gumbel_lite.data import DatasetError, write_cache

from .conftest import make_synthetic

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--network",
    "conv2",
    "--per-class",
    10,
    "--test-per-class",
    10,
    "--epochs",
    2,
    "--batch-size",
    32,
    "--device",
    "cpu",
    "--no-progress",
]


def cli(*args, timeout=300, input_pipe=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "gumbel_lite", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


# 5. per-class counts: 0 and -1 are refused, not read as "all"


@pytest.mark.parametrize("value", [0, -1])
def test_test_per_class_must_be_positive(synthetic_root, value):
    with pytest.raises(ValueError, match="test_per_class must be"):
        RunConfig(test_per_class=value)
    with pytest.raises(ValueError, match="test_per_class must be"):
        gl.CifarData(root=synthetic_root, test_per_class=value)


# 7. the cache is checked against meta.json, naming the file


def test_a_shard_missing_from_meta_json_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(gl.data, "SHARD_SIZE", 300)
    make_synthetic(tmp_path)  # 600 train images: two shards
    meta_path = tmp_path / "cifar10" / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["shards"]["train-01.npz"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"meta.json lists 300 train images .* train_count is 600"):
        gl.load_split("cifar10", "train", tmp_path)


@pytest.mark.parametrize(
    "images,found",
    [(np.zeros((20, 3, 32, 32), np.uint8), r"uint8 \[20, 3, 32, 32\]"), (np.zeros((20, 32, 32, 3), np.float32), "float32")],
)
def test_a_shard_of_the_wrong_shape_or_dtype_names_the_file(tmp_path, images, found):
    splits = {s: {"images": images, "labels": np.zeros(20, np.uint8)} for s in ("train", "test")}
    write_cache("cifar10", tmp_path, splits, [f"c{i}" for i in range(10)])
    with pytest.raises(DatasetError, match=rf"train-00.npz: images must be uint8 \[20, 32, 32, 3\].*found {found}"):
        gl.load_split("cifar10", "train", tmp_path)


# 11. prepare --download repairs a cache; a bad meta.json is named


def test_prepare_with_download_repairs_missing_or_corrupted_shards(tmp_path, monkeypatch):
    make_synthetic(tmp_path)
    rebuilt = []
    monkeypatch.setattr(gl.data, "download_to_cache", lambda name, root: rebuilt.append(name) or make_synthetic(root) / name)
    assert gl.prepare("cifar10", tmp_path, download=True) == tmp_path / "cifar10" and rebuilt == []  # intact: kept
    (tmp_path / "cifar10" / "test-00.npz").unlink()
    gl.prepare("cifar10", tmp_path, download=True)
    assert rebuilt == ["cifar10"] and (tmp_path / "cifar10" / "test-00.npz").exists()


def test_a_bad_meta_json_is_named(tmp_path):
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "meta.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"meta.json cannot be read .*prepare cifar10 --download"):
        gl.prepare("cifar10", tmp_path)


# 8. provenance: only this project's repository, and the package version


def test_git_commit_ignores_a_surrounding_repository(tmp_path):
    other = tmp_path / "other"
    (other / "lib").mkdir(parents=True)
    shutil.copytree(ROOT / "gumbel_lite", other / "lib" / "gumbel_lite", ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=other, check=True)
    subprocess.run([*git, "add", "."], cwd=other, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=other, check=True)
    env = {**os.environ, "PYTHONPATH": str(other / "lib")}
    code = (
        "from gumbel_lite.runner import git_commit, provenance; import torch; "
        "print(git_commit(), provenance(torch.device('cpu'))['gumbel_lite'])"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    out = run.stdout.split()
    assert out == ["unknown", gl.__version__]


# 12. paths and devices are checked before any work


def test_out_pointing_at_a_directory_is_refused_before_training(tmp_path):
    result = cli("train", *TINY, "--data-root", tmp_path / "nothing", "--out", tmp_path)
    assert result.returncode == 2 and "is a directory" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_out_in_a_read_only_directory_is_refused_before_training(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    result = cli("train", *TINY, "--data-root", tmp_path / "nothing", "--out", locked / "r.jsonl")
    assert result.returncode == 2 and "not writable" in result.stderr


@pytest.mark.parametrize("device,message", [("foo", "unknown device 'foo'"), ("cuda", "no usable CUDA GPU")])
def test_bad_devices_are_refused_before_any_work(tmp_path, device, message):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = cli("train", *TINY[:-3], "--device", device, "--data-root", tmp_path / "nothing", "--out", tmp_path / "r.jsonl")
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_summary_of_a_directory_is_an_error(tmp_path):
    result = cli("summary", tmp_path)
    assert result.returncode == 1 and "is a directory" in result.stderr and "Traceback" not in result.stderr


# 13. a diverged run exits non-zero


def test_a_diverged_run_exits_non_zero(synthetic_root, tmp_path):
    out = tmp_path / "r.jsonl"
    args = ["--network", "conv2", "--per-class", 20, "--test-per-class", 10, "--epochs", 1, "--batch-size", 50, "--no-track-test"]
    result = cli("train", *args, "--method", "naive_gumbel", "--mask-lr", 1e9, "--device", "cpu", "--no-progress",
                 "--data-root", synthetic_root, "--out", out)  # fmt: skip
    assert result.returncode == 1 and "diverged" in result.stderr
    assert [r["status"] for r in gl.read_results(out)] == ["diverged"]


# 14. no silent overrides


def test_grid_refuses_seed_and_overrides_of_what_it_varies(tmp_path):
    result = cli("grid", "ablation-tau", "--seed", 7, "--dry-run")
    assert result.returncode == 2 and "--seeds" in result.stderr
    result = cli("grid", "ablation-tau", "--tau", 3, "--dry-run")
    assert result.returncode == 2 and "varies tau" in result.stderr
    result = cli("grid", "ablation-tau", "--smoke", "--epochs", 3, "--dry-run")
    assert result.returncode == 0 and "--smoke sets its own --epochs" in result.stderr


# 15. small things: readable shards, a closed pipe


def test_shards_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        make_synthetic(tmp_path)
    finally:
        os.umask(old)
    assert all(p.stat().st_mode & 0o044 == 0o044 for p in (tmp_path / "cifar10").glob("*.npz"))


def test_summary_into_a_closed_pipe_is_quiet(tmp_path):
    out = tmp_path / "r.jsonl"
    line = {"run_id": "a", "label": "x", "config": {}, "seed": 0, "smoke": False, "metrics": {"test_accuracy": 0.5}, "wall_time": 1}
    out.write_text("".join(json.dumps({**line, "run_id": str(i)}) + "\n" for i in range(20000)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        f"{sys.executable} -m gumbel_lite summary {out} | head -1", shell=True, capture_output=True, text=True, env=env, timeout=120
    )
    assert result.stdout.count("\n") == 1 and "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
