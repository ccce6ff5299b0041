"""Promises about results files: nothing lost, nothing counted twice, bad lines named (README: Reliability)."""

import json
import math
import os
import warnings
from pathlib import Path

import pytest
import torch

import gumbel_lite as gl
from gumbel_lite.config import RunConfig
from gumbel_lite.runner import append_jsonl, read_results, run_grid

from .helpers import RESULTS, TINY, record

# 1. a torn last line never swallows the next record


def test_a_torn_last_line_does_not_swallow_the_next_record(tmp_path):
    out = tmp_path / "r.jsonl"
    append_jsonl(out, record("a"))
    with open(out, "a") as f:
        f.write('{"run_id": "b", "conf')  # a crash in the middle of a write
    append_jsonl(out, record("c"))
    with pytest.warns(UserWarning, match=r"r.jsonl:2: skipped"):
        assert [r["run_id"] for r in read_results(out)] == ["a", "c"]


# 2. two grids on one file: claims, a re-check before appending, unique temp names, de-duplicating readers


def test_readers_keep_one_record_per_run(tmp_path):
    out = tmp_path / "r.jsonl"
    for run_id in ("a", "b", "a"):
        append_jsonl(out, record(run_id))
    with pytest.warns(UserWarning, match=r"r.jsonl:3: skipped: run a again"):
        records = gl.results.load_results(out)
    assert [r["run_id"] for r in records] == ["a", "b"]
    assert append_jsonl(out, record("b"), skip_if_present=True) is False
    assert out.read_text().count("\n") == 3


def test_a_run_claimed_by_another_process_is_not_trained_twice(synthetic_root, tmp_path):
    from gumbel_lite.runner import _Claim

    config = RunConfig(**TINY)
    out, checkpoints = tmp_path / "r.jsonl", tmp_path / "ck"
    claim = _Claim(checkpoints, config.run_id)  # held by "the other grid"
    assert claim.taken
    notes = []
    assert (
        run_grid([config], out, data_root=synthetic_root, device="cpu", checkpoint_dir=checkpoints, progress=False, log=notes.append) == []
    )
    assert not out.exists() and "another process" in notes[-1]
    claim.release()
    assert (
        len(run_grid([config], out, data_root=synthetic_root, device="cpu", checkpoint_dir=checkpoints, progress=False, log=notes.append))
        == 1
    )
    assert not list(checkpoints.iterdir())  # a finished run leaves neither its checkpoint nor its lock behind


def test_checkpoint_temp_names_are_unique(tmp_path):
    from gumbel_lite.train import _atomic_save

    target = tmp_path / "run.pt"
    (tmp_path / "run.pt.tmp").mkdir()  # the fixed temp name is taken (another writer)
    _atomic_save({"x": torch.ones(2)}, target)
    assert torch.equal(torch.load(target, weights_only=True)["x"], torch.ones(2))


# 10. malformed lines are skipped with their line number


def test_malformed_lines_are_skipped_with_their_line_number(tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    good = json.dumps(record("a"))
    no_metrics = json.dumps({k: v for k, v in record("b").items() if k != "metrics"})
    out.write_text("\n".join(["{}", "[1, 2]", no_metrics, "garbage", good, ""]))
    with pytest.warns(UserWarning) as caught:
        assert [r["run_id"] for r in read_results(out)] == ["a"]
    assert [str(w.message).split(": skipped")[0][-1] for w in caught] == ["1", "2", "3", "4"]
    from gumbel_lite.cli import summary

    with pytest.warns(UserWarning):
        assert summary(out) == 0
    assert '"test_accuracy": 0.5' in capsys.readouterr().out


def test_unknown_config_fields_are_reported_not_dropped():
    rec = record("a")
    rec["config"]["future_field"] = 3
    with pytest.warns(UserWarning, match="future_field"):
        frame = gl.results.results_frame([rec])
    assert frame["future_field"].tolist() == [3]


def test_the_committed_results_still_read_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = gl.results.load_results(RESULTS / "ablations-cpu.jsonl")
        frame = gl.results.results_frame(records)
    assert len(frame) == len(records) > 0
    assert all(RunConfig.from_dict(r["config"]).run_id == r["run_id"] for r in records)


# 13. a diverged run keeps its checkpoint


def test_a_diverged_run_keeps_its_checkpoint_and_says_which_group(synthetic_root, tmp_path):
    base = dict(network="conv2", per_class=20, test_per_class=10, epochs=3, batch_size=50, track_test=False)
    diverging = RunConfig(**base, method="naive_gumbel", mask_lr=1e9)
    out, notes = tmp_path / "r.jsonl", []
    [rec] = run_grid([diverging], out, data_root=synthetic_root, device="cpu", progress=False, log=notes.append)
    assert rec["status"] == "diverged" and "mask_lr" not in rec["error"]
    checkpoint = tmp_path / "r.checkpoints" / f"{diverging.run_id}.pt"
    if "kept in the checkpoint" in rec["error"]:
        assert checkpoint.exists()
    else:
        assert "no checkpoint" in rec["error"]


# 15. strict JSON, readable shards, distinct labels, plain integers


def test_results_never_contain_bare_nan(tmp_path):
    out = tmp_path / "r.jsonl"
    append_jsonl(out, record("a", wall_time=math.nan, history={"val_accuracy": [math.nan, 0.5]}))
    text = out.read_text()
    assert "NaN" not in text
    assert json.loads(text)["history"]["val_accuracy"] == [None, 0.5]


# 4. --jobs: results kept as they complete, pending runs cancelled, workers never orphaned


def test_with_jobs_a_failing_run_keeps_the_finished_ones(synthetic_root, tmp_path):
    good = RunConfig(**{**TINY, "epochs": 2})
    bad = RunConfig(**{**TINY, "dataset": "cifar100"})  # not in the synthetic cache: fails at once
    out = tmp_path / "r.jsonl"
    with pytest.raises(gl.DatasetError, match="cifar100 not found"):
        run_grid([bad, good], out, jobs=2, data_root=synthetic_root, device="cpu", log=lambda _: None)
    assert [r["run_id"] for r in read_results(out)] == [good.run_id]


GRID_SCRIPT = """
import sys
from gumbel_lite.config import RunConfig
from gumbel_lite.runner import run_grid
configs = [RunConfig(network="conv2", per_class=10, test_per_class=10, epochs=100000, batch_size=32, track_test=False, seed=s)
           for s in range(4)]
run_grid(configs, sys.argv[1] + "/r.jsonl", jobs=2, data_root=sys.argv[2], device="cpu")
"""


def _children(pid):
    children = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children |= {int(c) for c in (task / "children").read_text().split()}
    return children


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
@pytest.mark.parametrize("how", ["sigkill", "sigint"])
def test_workers_stop_when_the_parent_is_killed_or_interrupted(synthetic_root, tmp_path, how):
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen([sys.executable, "-c", GRID_SCRIPT, str(tmp_path), str(synthetic_root)], env=env)
    workers = set()
    try:
        deadline = time.time() + 120
        while len(list((tmp_path / "r.checkpoints").glob("*.pt"))) < 2 and time.time() < deadline:  # both workers train
            time.sleep(0.5)
        workers = {c for c in _children(parent.pid) if _alive(c)}
        assert workers, "the grid did not start"
        parent.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGINT)
        deadline = time.time() + 30
        while any(_alive(w) for w in workers) and time.time() < deadline:
            time.sleep(0.5)
        assert not any(_alive(w) for w in workers), f"workers still running after the parent got {how}"
        parent.wait(timeout=30)
    finally:
        for pid in (parent.pid, *workers):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        parent.wait()


def test_two_grids_on_one_file_write_each_run_once(synthetic_root, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "r.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    args = ["grid", "ablation-tau", "--seeds", "0,1", "--smoke", "--device", "cpu", "--no-progress"]
    command = [sys.executable, "-m", "gumbel_lite", *args, "--data-root", str(synthetic_root), "--out", str(out)]
    grids = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for g in grids:
        _, err = g.communicate(timeout=600)
        assert g.returncode == 0, err
    lines = out.read_text().splitlines()
    assert len(lines) == 8 and len({json.loads(line)["run_id"] for line in lines}) == 8
