"""Grids on a cluster: one Slurm job per unfinished run, through submitit (``pip install 'gumbel-lite[cluster]'``).

Each run of a grid becomes one job (one job array per submission). A job trains from the run's
checkpoint (saved after the first epoch, then about once a minute), if one exists, so a job
that is preempted or reaches its time limit is requeued by submitit's checkpointing protocol
(:meth:`TrainJob.checkpoint`) and continues from its last saved epoch. ``submitit-local`` runs
the same jobs as processes on this machine, which is how the tests exercise everything but
Slurm itself.

Why line files and not appends: on a shared network file system ``flock`` may be ignored or
emulated badly, so jobs on many nodes appending to one results file could interleave or lose
lines. Instead each job writes its record to a file of its own, ``RESULTS.lines/RUN_ID.json``,
atomically (a uniquely named temporary file, then ``os.replace``, which never leaves a partial
file under the final name). Only :func:`collect` writes the results file: it runs on the
submitting machine (when the grid waits, at ``status`` time, or as ``python -m gumbel_lite
collect RESULTS``), holds a lock made with ``mkdir`` (atomic on network file systems too) and
appends the records whose ``run_id`` is not in the file yet, so merging twice adds nothing. Line
files are kept (they are small) and may be deleted once merged.

Beside the results file ``RESULTS.jsonl``: ``RESULTS.lines/`` (finished runs),
``RESULTS.jobs/RUN_ID.json`` (the latest job of each run: launcher, job id, submitit folder),
``RESULTS.submitit/`` (submitit's pickles and logs) and ``RESULTS.checkpoints/`` (per-epoch
checkpoints, as for local grids). A run is *done* when its record (``ok`` or ``diverged``, as in
a local grid) is in the results file or its line file exists, *running* while its job is queued
or running, *failed* when its job ended without a line file (an error, a killed node, too many
timeouts), and *missing* when it was never submitted. Submitting a grid again submits only the
failed and missing runs.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from .checks import check_choice, check_number
from .config import RunConfig
from .data import default_root
from .runner import _finite_or_null, append_jsonl, check_record, check_targets, read_results, run

LAUNCHERS = ("local", "slurm", "submitit-local")
STATES = ("done", "running", "failed", "missing")
# the options each launcher accepts besides the run's own (data, device, checkpoints)
OPTIONS = {
    "local": (),
    "slurm": ("partition", "gpus_per_run", "cpus_per_run", "time", "jobs", "slurm_args", "wait"),
    "submitit-local": ("gpus_per_run", "time", "wait"),
}
DEFAULT_TIME = "4:00:00"
# a long run spans several time slots: each timeout requeues it from its checkpoint, up to this many times
MAX_TIMEOUTS = 50
# Slurm states of a job that may still write its line file (UNKNOWN: not in the accounting yet)
SLURM_ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED"}
SLURM_ALIVE |= {"SIGNALING", "STAGE_OUT", "UNKNOWN"}


class ClusterError(RuntimeError):
    """A cluster launcher cannot work here (no Slurm on this machine)."""


def lines_folder(out: str | Path) -> Path:
    return Path(out).with_suffix(".lines")


def jobs_folder(out: str | Path) -> Path:
    return Path(out).with_suffix(".jobs")


def submitit_folder(out: str | Path) -> Path:
    return Path(out).with_suffix(".submitit")


def import_submitit(launcher: str):
    """The submitit module, or an ImportError that says how to install it."""
    try:
        import submitit
    except ImportError as e:
        raise ImportError(
            f"launcher {launcher!r} needs submitit, which is not installed: pip install 'gumbel-lite[cluster]' "
            f"(or pip install submitit), or use launcher 'local'"
        ) from e
    return submitit


def parse_time(text: str | int) -> int:
    """A time limit in minutes, written as Slurm writes one: ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M`` or ``D-H:M:S``."""
    if isinstance(text, int) and not isinstance(text, bool):
        return check_number("time", text, integer=True, minimum=1)
    text = str(text).strip()
    if not re.fullmatch(r"(\d+-)?\d+(:\d+){0,2}", text):
        raise ValueError(f"time must be minutes (240), H:M:S (4:00:00) or D-H[:M[:S]] (1-12), as Slurm writes it; got {text!r}")
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:
        hours, minutes, seconds = 0, parts[0], (parts + [0])[1]
    total = int(days or 0) * 1440 + hours * 60 + minutes + math.ceil(seconds / 60)
    return check_number("time", total, integer=True, minimum=1)


def check_options(launcher: str, cli: bool = False, **options) -> None:
    """Refuse an unknown launcher, and options given to a launcher that does not take them (``cli``: name them as flags)."""
    flag = (lambda name: "--" + name.replace("_", "-")) if cli else repr
    check_choice("--launcher" if cli else "launcher", launcher, LAUNCHERS)
    given = [k for k, v in options.items() if v not in (None, False, (), [], {})]
    wrong = [k for k in given if k not in OPTIONS[launcher]]
    if wrong:
        takers = {k: " or ".join(repr(name) for name, valid in OPTIONS.items() if k in valid) for k in wrong}
        raise ValueError(
            "; ".join(f"{flag(k)} applies only to launcher {takers[k]}" for k in wrong)
            + f" (the launcher is {launcher!r}; launchers: {', '.join(map(repr, LAUNCHERS))})"
        )
    for name, low in (("gpus_per_run", 0), ("cpus_per_run", 1), ("jobs", 1)):
        if options.get(name) is not None:
            check_number(flag(name) if cli else name, options[name], integer=True, minimum=low)
    if options.get("time") is not None:
        parse_time(options["time"])


def _write_atomic(path: Path, data: dict) -> None:
    """Write JSON to ``path`` through a temporary file unique to this host and process, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, sort_keys=True, allow_nan=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        warnings.warn(f"{path}: skipped: {e}", stacklevel=3)
        return None


class TrainJob:
    """One run as a cluster job: train ``config`` (from its checkpoint, if any) and write its line file.

    submitit calls :meth:`checkpoint` when the job is preempted or times out. The training
    state is already on disk (saved after the first epoch and then about once a minute: at most
    a minute of work is lost), so the requeued job is this same call.
    """

    def __init__(self, config: dict, lines: str, kwargs: dict) -> None:
        self.config, self.lines, self.kwargs = config, lines, kwargs

    def __call__(self) -> dict:
        config = RunConfig.from_dict(self.config)
        line = Path(self.lines) / f"{config.run_id}.json"
        if line.exists():  # an earlier job of this run finished
            return {"run_id": config.run_id, "status": "already done"}
        checkpoint = Path(self.kwargs["checkpoint_dir"]) / f"{config.run_id}.pt"
        if checkpoint.exists():
            print(f"{config.label} seed {config.seed} ({config.run_id}): resuming from {checkpoint}", flush=True)
        record = run(config, **self.kwargs, progress=False)
        record["job_id"] = _job_id()
        _write_atomic(line, _finite_or_null(record))
        if record["status"] == "ok":
            checkpoint.unlink(missing_ok=True)
        print(f"{config.label} seed {config.seed} ({config.run_id}): {record['status']}, written to {line}", flush=True)
        return {"run_id": config.run_id, "status": record["status"]}

    def checkpoint(self, *args, **kwargs):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(TrainJob(self.config, self.lines, self.kwargs))


def _job_id() -> str | None:
    try:
        import submitit

        return submitit.JobEnvironment().job_id
    except Exception:  # noqa: BLE001 - not inside a submitit job
        return None


class _MergeLock:
    """A lock made with ``mkdir`` (atomic on network file systems too); a lock older than ``stale_s`` is taken over."""

    def __init__(self, path: Path, timeout_s: float = 600, stale_s: float = 600) -> None:
        self.path, self.timeout_s, self.stale_s = path, timeout_s, stale_s

    def __enter__(self) -> _MergeLock:
        deadline = time.time() + self.timeout_s
        while True:
            try:
                self.path.mkdir(parents=False)
                return self
            except FileExistsError:
                try:
                    if time.time() - self.path.stat().st_mtime > self.stale_s:
                        self.path.rmdir()  # left by a merge that died
                        continue
                except FileNotFoundError:
                    continue
                if time.time() > deadline:
                    raise TimeoutError(f"{self.path} is held by another merge; remove it if no merge is running") from None
                time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.path.rmdir()


def collect(out: str | Path, log: Callable[[str], None] = print) -> list[dict]:
    """Merge the line files beside ``out`` into it: each run once, so merging again adds nothing. Returns the new records."""
    out = Path(out)
    folder = lines_folder(out)
    if not folder.is_dir():
        return []
    new = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with _MergeLock(out.with_suffix(".merging")):
        done = {r["run_id"] for r in read_results(out, quiet=True)}
        for path in sorted(folder.glob("*.json")):
            record = _read_json(path)
            problem = check_record(record) if record is not None else "unreadable"
            if problem is not None:
                if record is not None:
                    warnings.warn(f"{path}: skipped: {problem}", stacklevel=2)
                continue
            if record["run_id"] in done:
                continue
            append_jsonl(out, record)
            done.add(record["run_id"])
            new.append(record)
    if new:
        log(f"merged {len(new)} new record(s) from {folder} into {out}")
    return new


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) submitit process on this machine."""
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").exists():
        try:
            alive = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
            return alive and b"submitit" in (proc / "cmdline").read_bytes()
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_alive(job: dict) -> bool:
    """Whether the job of a job record may still write its line file (queued, running, or being requeued)."""
    submitit = import_submitit(job["launcher"])
    if job["launcher"] == "slurm":
        handle = submitit.SlurmJob(job["folder"], job["job_id"])
        return not handle.paths.result_pickle.exists() and handle.state.split()[0] in SLURM_ALIVE
    handle = submitit.LocalJob(job["folder"], job["job_id"])
    return not handle.paths.result_pickle.exists() and _pid_alive(int(job["job_id"]))


def run_states(configs: list[RunConfig], out: str | Path) -> dict[str, tuple[str, dict | None]]:
    """``run_id -> (state, job record or None)`` for every config: done, running, failed or missing."""
    out = Path(out)
    done = {r["run_id"] for r in read_results(out, quiet=True)}
    lines, jobs = lines_folder(out), jobs_folder(out)
    states = {}
    for config in configs:
        run_id = config.run_id
        job_file = jobs / f"{run_id}.json"
        job = _read_json(job_file) if job_file.exists() else None
        if run_id in done or (lines / f"{run_id}.json").exists():
            states[run_id] = ("done", job)
        elif job is None:
            states[run_id] = ("missing", None)
        else:
            states[run_id] = ("running" if job_alive(job) else "failed", job)
    return states


def known_configs(out: str | Path) -> list[RunConfig]:
    """Every run the results file, the line files or the job records of ``out`` know of."""
    out = Path(out)
    found = [r["config"] for r in read_results(out, quiet=True)]
    for folder in (lines_folder(out), jobs_folder(out)):
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            record = _read_json(path)
            if isinstance(record, dict) and isinstance(record.get("config"), dict):
                found.append(record["config"])
    configs = []
    for config in found:
        try:
            configs.append(RunConfig.from_dict(config))
        except (TypeError, ValueError) as e:
            warnings.warn(f"a run of {out} skipped: {e}", stacklevel=2)
    return list(dict.fromkeys(configs))


def cell_names(configs: list[RunConfig]) -> dict[str, str]:
    """``run_id -> cell``: the label, plus every field that varies across ``configs`` and is not in it (seeds share a cell)."""
    in_label = {"network", "method", "rescale", "signed_constant", "augment", "tau", "logit_init", "seed", "smoke"}
    fields = [k for k in RunConfig.__dataclass_fields__ if k not in in_label]
    varied = [k for k in fields if len({repr(getattr(c, k)) for c in configs}) > 1]
    return {c.run_id: " ".join([c.label, *(f"{k}={getattr(c, k)}" for k in varied)]) for c in configs}


def status_table(configs: list[RunConfig], out: str | Path) -> tuple[list[tuple], dict, list[tuple]]:
    """Counts per cell ``(cell, done, running, failed, missing)``, the totals, and the failed runs ``(config, job)``."""
    configs = list(dict.fromkeys(configs))
    states = run_states(configs, out)
    names = cell_names(configs)
    rows: dict[str, dict] = {}
    for config in configs:
        counts = rows.setdefault(names[config.run_id], dict.fromkeys(STATES, 0))
        counts[states[config.run_id][0]] += 1
    totals = {s: sum(r[s] for r in rows.values()) for s in STATES}
    failed = [(c, states[c.run_id][1]) for c in configs if states[c.run_id][0] == "failed"]
    return [(name, *(counts[s] for s in STATES)) for name, counts in rows.items()], totals, failed


def local_gpus() -> int:
    """GPUs a ``submitit-local`` job gets by default: one where this machine has CUDA, else none."""
    import torch

    return 1 if torch.cuda.is_available() else 0


def make_executor(
    launcher: str,
    folder: Path,
    partition: str | None = None,
    gpus_per_run: int | None = None,
    cpus_per_run: int | None = None,
    time: str | int | None = None,
    jobs: int | None = None,
    slurm_args: dict | None = None,
):
    """A submitit executor for ``launcher`` (``slurm`` or ``submitit-local``): one task, one node per run."""
    submitit = import_submitit(launcher)
    minutes = parse_time(time if time is not None else DEFAULT_TIME)
    if launcher == "slurm":
        try:
            executor = submitit.SlurmExecutor(folder, max_num_timeout=MAX_TIMEOUTS)
        except RuntimeError as e:  # submitit finds no srun
            raise ClusterError(
                f"launcher 'slurm' needs Slurm, which this machine does not have ({e}): submit from the cluster's login node, "
                "or use launcher 'submitit-local' to run the jobs here"
            ) from e
        options = dict(partition=partition, cpus_per_task=cpus_per_run, array_parallelism=jobs)
        executor.update_parameters(
            time=minutes,
            nodes=1,
            ntasks_per_node=1,
            gpus_per_node=1 if gpus_per_run is None else gpus_per_run,
            job_name="gumbel-lite",
            additional_parameters=dict(slurm_args or {}),
            **{k: v for k, v in options.items() if v is not None},
        )
        return executor
    executor = submitit.LocalExecutor(folder, max_num_timeout=MAX_TIMEOUTS)
    # submitit hides every GPU from a local job given 0 (CUDA_VISIBLE_DEVICES=""): by default give it this machine's
    executor.update_parameters(timeout_min=minutes, gpus_per_node=local_gpus() if gpus_per_run is None else gpus_per_run)
    return executor


def submit_grid(
    configs: list[RunConfig],
    out: str | Path,
    launcher: str = "slurm",
    *,
    partition: str | None = None,
    gpus_per_run: int | None = None,
    cpus_per_run: int | None = None,
    time: str | int | None = None,
    jobs: int | None = None,
    slurm_args: dict | None = None,
    wait: bool = False,
    data_root: str | Path | None = None,
    device: str | None = None,
    checkpoint_dir: str | Path | None = None,
    download: bool = False,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Submit one job per run of ``configs`` that is neither done nor running; returns the new records.

    ``time``: the time limit of each job (minutes or ``[D-]HH:MM:SS``; a run that needs longer
    is requeued from its checkpoint). ``jobs``: at most that many array tasks at once (Slurm).
    ``slurm_args``: more ``sbatch`` options, e.g. ``{"account": "abc", "qos": "high"}``. With
    ``wait``, waits for the jobs it submits and merges their records into ``out`` (returning
    them); otherwise returns ``[]`` at once: merge later with :func:`collect` or ``status``.
    ``device`` is resolved on each node (default: the best there).
    """
    check_options(
        launcher,
        partition=partition,
        gpus_per_run=gpus_per_run,
        cpus_per_run=cpus_per_run,
        time=time,
        jobs=jobs,
        slurm_args=slurm_args,
        wait=wait,
    )
    if launcher == "local":
        raise ValueError("launcher 'local' runs in this process: use gumbel_lite.run_grid")
    out = Path(out).absolute()
    folder = submitit_folder(out)
    executor = make_executor(launcher, folder, partition, gpus_per_run, cpus_per_run, time, jobs, slurm_args)
    checkpoint_dir = Path(checkpoint_dir).absolute() if checkpoint_dir else out.with_suffix(".checkpoints")
    check_targets(out, checkpoint_dir, None)  # the device is the nodes', not this machine's
    if device is not None:
        import torch

        try:
            torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps ({e})") from e
    collect(out, log=log)
    configs = list(dict.fromkeys(configs))
    states = run_states(configs, out)
    count = {s: sum(state == s for state, _ in states.values()) for s in STATES}
    todo = [c for c in configs if states[c.run_id][0] in ("failed", "missing")]
    log(
        f"{count['done']} of {len(configs)} runs already in {out}, {count['running']} queued or running; "
        f"{len(todo)} to submit ({count['failed']} failed before, {count['missing']} never submitted)"
    )
    if not todo:
        return []
    root = Path(data_root if data_root is not None else default_root()).absolute()
    kwargs = dict(data_root=str(root), device=device, checkpoint_dir=str(checkpoint_dir), download=download)
    lines = str(lines_folder(out))
    with executor.batch():
        handles = [executor.submit(TrainJob(c.to_dict(), lines, kwargs)) for c in todo]
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for config, handle in zip(todo, handles):
        job_file = jobs_folder(out) / f"{config.run_id}.json"
        before = states[config.run_id][1] or {}
        earlier = [*before.get("earlier_job_ids", []), before["job_id"]] if before else []
        record = dict(
            run_id=config.run_id,
            label=config.label,
            seed=config.seed,
            config=config.to_dict(),
            launcher=launcher,
            job_id=str(handle.job_id),
            folder=str(folder),
            submitted_at=now,
            earlier_job_ids=earlier,
        )
        _write_atomic(job_file, record)
    ids = [str(h.job_id) for h in handles]
    log(f"submitted {len(ids)} job(s) ({launcher}): {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}")
    log(f"logs in {folder}; see `python -m gumbel_lite status {out} --grid NAME`, merge with `python -m gumbel_lite collect {out}`")
    if not wait:
        return []
    for handle in handles:
        handle.wait()
    new = collect(out, log=log)
    for config in todo:
        if not (lines_folder(out) / f"{config.run_id}.json").exists():
            job = _read_json(jobs_folder(out) / f"{config.run_id}.json") or {}
            log(f"{config.label} seed {config.seed} ({config.run_id}): failed; log: {log_path(job)}")
    return new


def log_path(job: dict) -> Path | None:
    """The error log of the job of a job record (submitit's file), or ``None`` if unknown."""
    if not job.get("job_id"):
        return None
    from submitit.core.utils import JobPaths

    return JobPaths(job["folder"], job["job_id"], 0).stderr
