"""Grids as cluster jobs, with submitit's local executor standing in for Slurm: nothing lost, nothing twice, stopped runs resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gumbel_lite as gl
from gumbel_lite import cluster
from gumbel_lite.cli import main
from gumbel_lite.config import RunConfig
from gumbel_lite.runner import append_jsonl, read_results

from .helpers import TINY, record

ROOT = Path(__file__).resolve().parents[1]
# long enough (in epochs) to be stopped while it trains, on the synthetic dataset
LONG = {**TINY, "per_class": 20, "epochs": 30}


@pytest.fixture
def submitit():
    return pytest.importorskip("submitit")


def wait_for(condition, what, timeout=300):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def job_of(out, config) -> dict:
    return json.loads((cluster.jobs_folder(out) / f"{config.run_id}.json").read_text())


def task_of(job: dict) -> int:
    """The training process of a local job (the child of its controller, whose pid is the job id)."""
    children = []
    for task in Path(f"/proc/{job['job_id']}/task").glob("*"):
        children += [int(c) for c in (task / "children").read_text().split()]
    assert len(children) == 1, f"job {job['job_id']} has children {children}"
    return children[0]


def log_of(job: dict) -> str:
    """What the job printed and what submitit logged about it."""
    err = Path(cluster.log_path(job))
    return err.with_suffix(".out").read_text() + err.read_text()


def test_a_smoke_grid_runs_as_jobs_and_is_merged_once(submitit, cifar_root, tmp_path, capsys):
    out = tmp_path / "grid.jsonl"
    args = ["ablation-init", "--smoke", "--data-root", str(cifar_root), "--out", str(out), "--device", "cpu", "--no-progress"]
    assert main(["grid", *args, "--launcher", "submitit-local", "--wait"]) == 0
    first = capsys.readouterr().out
    assert "3 to submit" in first and "submitted 3 job(s)" in first and "merged 3 new record(s)" in first
    records = read_results(out)
    assert len(records) == 3 and all(r["smoke"] and r["job_id"] for r in records)
    assert sorted(r["config"]["logit_init"] for r in records) == [-2.0, 0.0, 2.0]
    text = out.read_text()
    assert main(["collect", str(out)]) == 0  # merging again adds nothing
    assert main(["grid", *args, "--launcher", "submitit-local"]) == 0
    again = capsys.readouterr().out
    assert "3 of 3 runs already" in again and "job(s)" not in again and "merged" not in again
    assert out.read_text() == text and len(text.splitlines()) == 3
    assert main(["status", str(out), "--grid", "ablation-init", "--smoke"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split()[-4:] == ["3", "0", "0", "0"]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_a_preempted_job_is_requeued_and_resumes_from_its_checkpoint(submitit, synthetic_root, tmp_path):
    config = RunConfig(**LONG)
    out, notes = tmp_path / "r.jsonl", []
    options = dict(data_root=synthetic_root, device="cpu", log=notes.append)
    cluster.submit_grid([config], out, "submitit-local", **options)
    job = job_of(out, config)
    checkpoint = tmp_path / "r.checkpoints" / f"{config.run_id}.pt"
    wait_for(checkpoint.exists, "the first epoch")
    os.kill(task_of(job), signal.SIGUSR2)  # what Slurm sends before preempting the job or at its time limit
    wait_for((cluster.lines_folder(out) / f"{config.run_id}.json").exists, "the requeued job")
    assert cluster.collect(out, log=notes.append)[0]["metrics"]["epochs_run"] == config.epochs
    wait_for(lambda: "Exiting after successful completion" in log_of(job), "the job's end")
    log = log_of(job)
    assert "this job is preempted" in log and "Requeued job" in log
    assert "resuming from" in log  # the requeued job started from the checkpoint, not from scratch
    assert not checkpoint.exists()  # a finished run drops its checkpoint


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_a_killed_job_is_resubmitted_alone_and_resumes(submitit, synthetic_root, tmp_path):
    long, short = RunConfig(**LONG), RunConfig(**TINY)
    out, notes = tmp_path / "r.jsonl", []
    options = dict(data_root=synthetic_root, device="cpu", log=notes.append)
    cluster.submit_grid([long, short], out, "submitit-local", **options)
    killed = job_of(out, long)
    wait_for((tmp_path / "r.checkpoints" / f"{long.run_id}.pt").exists, "the first epoch")
    os.kill(task_of(killed), signal.SIGKILL)  # a node that dies: no signal handler, no requeue
    wait_for(lambda: (cluster.lines_folder(out) / f"{short.run_id}.json").exists(), "the short run")
    wait_for(lambda: not cluster.job_alive(killed), "the killed job's controller")
    _, totals, failed = cluster.status_table([long, short], out)
    assert totals == {"done": 1, "running": 0, "failed": 1, "missing": 0}
    assert [c for c, _ in failed] == [long]
    new = cluster.submit_grid([long, short], out, "submitit-local", wait=True, **options)
    assert "1 to submit (1 failed before, 0 never submitted)" in [n for n in notes if "to submit" in n][-1]
    assert [r["run_id"] for r in new] == [long.run_id]
    assert job_of(out, long)["earlier_job_ids"] == [killed["job_id"]]
    assert "resuming from" in log_of(job_of(out, long))
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and {json.loads(line)["run_id"] for line in lines} == {long.run_id, short.run_id}
    assert json.loads(lines[-1])["metrics"]["epochs_run"] == long.epochs


def test_status_counts_a_partly_finished_grid(submitit, tmp_path, capsys):
    configs = [gl.smoke(c) for c in gl.grid("ablation-tau", seeds=[0, 1])]
    out, folder = tmp_path / "r.jsonl", str(tmp_path / "r.submitit")
    append_jsonl(out, record(configs[0].run_id, config=configs[0].to_dict()))  # done, merged
    cluster._write_atomic(cluster.lines_folder(out) / f"{configs[1].run_id}.json", record(configs[1].run_id, config=configs[1].to_dict()))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "submitit"])  # a live job
    try:
        for config, job_id in ((configs[2], str(sleeper.pid)), (configs[3], "999999")):
            job = dict(config=config.to_dict(), launcher="submitit-local", job_id=job_id, folder=folder)
            cluster._write_atomic(cluster.jobs_folder(out) / f"{config.run_id}.json", job)
        Path(folder).mkdir()
        submitit.core.utils.JobPaths(folder, "999999", 0).result_pickle.write_bytes(b"")  # the job ended without a line file
        assert main(["status", str(out), "--grid", "ablation-tau", "--seeds", "0,1", "--smoke"]) == 0
    finally:
        sleeper.kill()
        sleeper.wait()
    merged, *lines = capsys.readouterr().out.splitlines()
    assert merged.startswith("merged 1 new record(s)")  # status merged the finished line file
    assert lines[0].split() == ["cell", "done", "running", "failed", "missing"]
    rows = {line.rsplit(None, 4)[0]: [int(n) for n in line.split()[-4:]] for line in lines[1:5]}
    assert rows == {
        "conv2 aslp +SR tau=0.5": [1, 0, 0, 1],
        "conv2 aslp +SR": [1, 0, 0, 1],
        "conv2 aslp +SR tau=2": [0, 1, 0, 1],
        "conv2 aslp +SR tau=4": [0, 0, 1, 1],
    }
    assert lines[5].split() == ["total", "(8", "runs)", "2", "1", "1", "4"]
    assert lines[6].startswith(f"failed: conv2 aslp +SR tau=4 seed 0 ({configs[3].run_id}), job 999999, log ")
    assert "1 failed and 4 missing" in lines[7]
    assert len(read_results(out)) == 2


def test_collect_is_idempotent_and_skips_bad_line_files(tmp_path):
    out = tmp_path / "r.jsonl"
    lines = cluster.lines_folder(out)
    append_jsonl(out, record("a"))
    for run_id in ("a", "b", "c"):
        cluster._write_atomic(lines / f"{run_id}.json", record(run_id))
    (lines / "d.json").write_text('{"run_id": "d", "conf')  # not written by a job (those are atomic)
    (lines / ".e.json.host.1.tmp").write_text("{}")  # a job's unfinished temporary file
    with pytest.warns(UserWarning, match="d.json: skipped"):
        assert [r["run_id"] for r in cluster.collect(out, log=lambda _: None)] == ["b", "c"]
    with pytest.warns(UserWarning, match="d.json: skipped"):
        assert cluster.collect(out, log=lambda _: None) == []
    assert [json.loads(line)["run_id"] for line in out.read_text().splitlines()] == ["a", "b", "c"]
    assert not out.with_suffix(".merging").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--launcher", "slurmy"], "argument --launcher: invalid choice: 'slurmy' (choose from 'local', 'slurm', 'submitit-local')"),
        (["--partition", "gpu"], "--partition applies only to launcher 'slurm' (the launcher is 'local'; launchers: 'local', 'slurm'"),
        (["--time", "1:00:00", "--wait"], "--time applies only to launcher 'slurm' or 'submitit-local'; --wait applies only"),
        (["--launcher", "submitit-local", "--jobs", "4"], "--jobs applies only to launcher 'slurm' (the launcher is 'submitit-local'"),
        (["--launcher", "slurm", "--time", "soon"], "time must be minutes (240), H:M:S (4:00:00) or D-H[:M[:S]] (1-12)"),
        (["--launcher", "slurm", "--gpus-per-run", "-1"], "--gpus-per-run must be an integer >= 0, got -1"),
        (["--launcher", "slurm", "--slurm-arg", "account"], "--slurm-arg takes KEY=VALUE"),
    ],
)
def test_bad_launcher_input_is_refused_with_a_clear_message(tmp_path, capsys, args, message):
    out = tmp_path / "r.jsonl"
    with pytest.raises(SystemExit) as exit_:
        main(["grid", "ablation-init", "--smoke", "--out", str(out), *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_the_python_api_refuses_bad_launchers(tmp_path):
    out = tmp_path / "r.jsonl"
    with pytest.raises(ValueError, match="unknown launcher 'pbs'; choose one of 'local', 'slurm', 'submitit-local'"):
        gl.run_grid([RunConfig(**TINY)], out, launcher="pbs")
    with pytest.raises(ValueError, match="'partition' applies only to launcher 'slurm'"):
        gl.run_grid([RunConfig(**TINY)], out, partition="gpu")
    with pytest.raises(ValueError, match="time must be"):
        cluster.submit_grid([RunConfig(**TINY)], out, "submitit-local", time="never")
    assert [cluster.parse_time(t) for t in ("90", "4:00:00", "1-12", "1-0:30", "10:30")] == [90, 240, 2160, 1470, 11]


def test_without_submitit_a_cluster_launcher_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` now fails
    out = tmp_path / "r.jsonl"
    assert main(["grid", "ablation-init", "--smoke", "--out", str(out), "--launcher", "slurm", "--partition", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "launcher 'slurm' needs submitit, which is not installed: pip install 'gumbel-lite[cluster]'" in err
    assert not out.exists()


def test_slurm_jobs_ask_for_what_the_flags_say(submitit, tmp_path, monkeypatch):
    if not submitit.SlurmExecutor.affinity() > 0:
        with pytest.raises(cluster.ClusterError, match="needs Slurm, which this machine does not have"):
            cluster.make_executor("slurm", tmp_path)
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # pretend to be on a cluster
    executor = cluster.make_executor("slurm", tmp_path, "gpu", 1, 8, "1-12", 16, {"account": "abc"})
    script = executor._make_submission_file_text("python -m submitit.core._submit x", "uid")
    for line in ("--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=8", "--time=2160", "--account=abc", "--signal=USR2@"):
        assert f"#SBATCH {line}" in script
    assert executor.parameters["array_parallelism"] == 16


def test_importing_the_package_does_not_import_submitit():
    code = "import sys, gumbel_lite, gumbel_lite.cli, gumbel_lite.cluster; assert 'submitit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
