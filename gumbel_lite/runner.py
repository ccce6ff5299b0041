"""Run configs and keep their results: one JSON line per finished run, appended atomically.

A results file is append-only. Each line holds the full config, its ``run_id``, the metrics, a
per-epoch history summary and provenance (device, versions, git commit, seed, wall time). A run
whose ``run_id`` is already in the file is skipped, so an interrupted grid resumes where it
stopped; an interrupted run resumes from its checkpoint (saved after the first epoch, then about once a minute).
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import math
import os
import platform
import subprocess
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from . import models
from .config import RunConfig
from .data import DATASETS, CifarData, prepare
from .masking import mask_model
from .train import History, device_name, seed_everything, train

HISTORY_KEYS = ("loss", "train_accuracy", "val_accuracy", "test_accuracy", "epoch_time", "density", "flip_rate", "mean_p_sel")


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)


def git_commit() -> str:
    """The commit of this project's repository (``+dirty`` if it has local changes), or ``unknown``.

    Only a repository whose top level holds this very package (``gumbel_lite/`` next to a
    ``pyproject.toml`` naming gumbel-lite) counts: an installed copy inside some other
    repository (a virtual environment in another project) records ``unknown``, never that
    repository's commit.
    """
    here = Path(__file__).resolve().parent
    try:
        top = _git(["rev-parse", "--show-toplevel"], here)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != here.parent:
            return "unknown"
        pyproject = here.parent / "pyproject.toml"
        if not pyproject.is_file() or 'name = "gumbel-lite"' not in pyproject.read_text():
            return "unknown"
        sha = _git(["rev-parse", "HEAD"], here)
        dirty = _git(["status", "--porcelain", "--untracked-files=no"], here)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if sha.returncode != 0:
        return "unknown"
    return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def provenance(device: torch.device) -> dict:
    import torchvision

    from . import __version__

    return {
        "device": str(device),
        "device_name": device_name(device),
        "gumbel_lite": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _finite_or_null(value):
    """``value`` with every NaN / infinity replaced by ``None`` (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    return value


class ResultsWriteError(OSError):
    """A results record could not be written (full disk, quota, file size limit); the message names the file and the cause."""


def append_jsonl(path: str | Path, record: dict, skip_if_present: bool = False) -> bool:
    """Append one JSON line atomically: one ``write`` under an exclusive lock, then fsync.

    The line always starts on a fresh line (a torn last line left by a crash is closed first, so
    it cannot swallow this record). NaN and infinities are written as ``null``. A short or failed
    write (a full disk) truncates the file back to what it was and raises :class:`ResultsWriteError`. With
    ``skip_if_present``, the file is re-read under the lock and nothing is written when a record
    with the same ``run_id`` is already there. Returns whether the record was written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(_finite_or_null(record), sort_keys=True, allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if skip_if_present and size and record.get("run_id") in _run_ids(path):
            return False
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        try:
            written = 0
            while written < len(line):  # a regular file writes short only when it is full (disk, quota, ulimit -f)
                n = os.write(fd, line[written:])
                if n == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += n
            os.fsync(fd)
        except OSError as e:
            os.ftruncate(fd, size)  # the file exactly as it was: no torn line
            raise ResultsWriteError(
                f"the record of run {record.get('run_id')} could not be appended to {path} ({e.strerror or e}); the file is left "
                "as it was and the run's checkpoint is kept: free some space and run the same command again"
            ) from e
        return True
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _run_ids(path: Path) -> set:
    return {r["run_id"] for r in read_results(path, quiet=True)}


def check_record(record) -> str | None:
    """Why ``record`` is not a usable results record, or ``None`` if it is."""
    if not isinstance(record, dict):
        return f"not a JSON object but {type(record).__name__}"
    for key, kind in (("run_id", str), ("config", dict), ("metrics", dict)):
        if not isinstance(record.get(key), kind):
            return f"no {key!r} ({kind.__name__})"
    return None


def read_results(path: str | Path, quiet: bool = False) -> list[dict]:
    """All usable records of a results file, each ``run_id`` once (its first record).

    Lines that are not JSON (a torn last line, garbage) or not results records are skipped
    with a warning giving the file and line number; so are repeated ``run_id``s (two grids
    that wrote the same run), keeping the first.
    """
    path = Path(path)
    if not path.exists():
        return []
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a results file")
    records, seen = [], set()
    for number, line in enumerate(path.read_text(errors="replace").split("\n"), 1):  # not splitlines: U+2028 is text in JSON
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            problem = "not valid JSON (a torn or garbled line)"
        else:
            problem = check_record(record)
        if problem is None and record["run_id"] in seen:
            problem = f"run {record['run_id']} again (keeping its first record)"
        if problem is not None:
            if not quiet:
                warnings.warn(f"{path}:{number}: skipped: {problem}", stacklevel=2)
            continue
        seen.add(record["run_id"])
        records.append(record)
    return records


def build_model(config: RunConfig) -> torch.nn.Module:
    """The network of ``config``, masked as it says (seeded by ``config.seed``)."""
    seed_everything(config.seed)
    net = models.build(config.network, DATASETS[config.dataset], bias=config.bias)
    return mask_model(
        net,
        method=config.method,
        rescale=config.rescale,
        signed_constant=config.signed_constant,
        signed_constant_layers=config.signed_constant_layers,
        tau=config.tau,
        keep_fraction=config.keep_fraction,
        logit_init=config.logit_init,
    )


def history_summary(history: History) -> dict:
    """Per-epoch curves (lists), per-layer diagnostics as curves (``layers``: layer → quantity →
    list), the first epoch's rates, and the best epoch's per-layer density and scales."""
    summary = {k: history.column(k) for k in HISTORY_KEYS if history.epochs and k in history.epochs[0]}
    if history.epochs and "layers" in history.epochs[0]:
        first = history.epochs[0]["layers"]
        summary["layers"] = {n: {q: [e["layers"][n][q] for e in history.epochs] for q in first[n]} for n in first}
    if history.epochs and "lr" in history.epochs[0]:
        summary["rates"] = history.epochs[0]["lr"]
    best = next((e for e in history.epochs if e["epoch"] == history.best_epoch), None)
    if best is not None and "density_per_layer" in best:
        summary["best_density_per_layer"] = best["density_per_layer"]
        summary["best_scales"] = best["scales"]
    return summary


def run(
    config: RunConfig,
    data_root: str | Path | None = None,
    device: str | torch.device | None = None,
    checkpoint_dir: str | Path | None = None,
    download: bool = False,
    progress: bool | None = None,
) -> dict:
    """Train one config and return its results record (not yet written anywhere)."""
    from .train import default_device

    device = torch.device(device) if device is not None else default_device()
    data = CifarData(
        config.dataset,
        data_root,
        device,
        config.batch_size,
        config.augment,
        config.val_fraction,
        config.seed,
        config.per_class,
        config.test_per_class,
        config.pipeline,
        download,
        normalize=config.normalize,
    )
    net = build_model(config)
    checkpoint = Path(checkpoint_dir) / f"{config.run_id}.pt" if checkpoint_dir else None
    if checkpoint:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    base = {"run_id": config.run_id, "label": config.label, "config": config.to_dict(), "seed": config.seed, "smoke": config.smoke}
    try:
        history = train(
            net,
            data,
            epochs=config.epochs,
            mask_lr=config.mask_lr,
            scale_lr=config.scale_lr,
            weight_lr=config.weight_lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            schedule=config.schedule,
            patience=config.patience,
            mask_optimizer=config.mask_optimizer,
            layer_lr=config.layer_lr,
            decay_fraction=config.decay_fraction,
            checkpoint=checkpoint,
            run_id=config.run_id,
            bf16=config.bf16,
            channels_last=config.channels_last,
            eval_samples=config.eval_samples,
            track_test=config.track_test,
            progress=progress,
        )
    except FloatingPointError as error:  # a diverged run is a result too: record it, don't retry it
        return {
            **base,
            "status": "diverged",
            "error": str(error),
            "metrics": {"test_accuracy": None, "density": None},
            "history": {},
            "wall_time": time.perf_counter() - started,
            **provenance(device),
        }
    record = {
        **base,
        "status": "ok",
        "metrics": {
            "test_accuracy": history.test_accuracy,
            "best_val_accuracy": history.best_val_accuracy,
            "best_epoch": history.best_epoch,
            "epochs_run": len(history.epochs),
            "density": history.final_density,
            "sampled_test_accuracy": history.sampled_test_accuracy,
            "sampled_test_accuracy_mean": (
                sum(history.sampled_test_accuracy) / len(history.sampled_test_accuracy) if history.sampled_test_accuracy else None
            ),
            "stopped_early": history.stopped_early,
            "train_images": len(data.splits["train"]),
            "test_images": len(data.splits["test"]),
        },
        "history": history_summary(history),
        "precision": {"bf16": history.bf16, "channels_last": history.channels_last, "reason": history.precision_reason},
        "wall_time": history.wall_time,
        **provenance(device),
    }
    return record


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class _Claim:
    """An exclusive, non-blocking lock on one run (``CHECKPOINT_DIR/RUN_ID.lock``), held while it trains.

    Two grids on one results file never train the same run: the second finds the claim taken
    and skips the run. The lock dies with its process, so a crashed run is free again. Once the
    run's record is written the lock file is removed (``finished``): a process that still opened
    the old file, or creates a new one, re-reads the results file after claiming and skips.
    """

    def __init__(self, checkpoint_dir: Path, run_id: str) -> None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.path = checkpoint_dir / f"{run_id}.lock"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None

    @property
    def taken(self) -> bool:
        return self.fd is not None

    def finished(self) -> None:
        """Remove the lock file of a run whose record is written (the lock is still held, then released)."""
        self.path.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _claim_and_run(config: RunConfig, out: Path, kwargs: dict) -> tuple[dict | None, str]:
    """Train ``config`` if no other process has claimed it and it is not in ``out`` yet; append its record.

    Returns ``(record, note)``: ``record`` is ``None`` when the run was skipped (``note`` says why).
    """
    claim = _Claim(Path(kwargs["checkpoint_dir"]), config.run_id)
    if not claim.taken:
        return None, "being trained by another process: skipped"
    try:
        if config.run_id in _run_ids(out):
            return None, f"already in {out} (written by another process): skipped"
        # temporaries of a save killed midway (SIGKILL): nobody else writes this run's checkpoint while we hold its claim
        for stale in Path(kwargs["checkpoint_dir"]).glob(f"{config.run_id}.pt.*.tmp"):
            stale.unlink(missing_ok=True)
        record = run(config, **kwargs)
        if not append_jsonl(out, record, skip_if_present=True):
            claim.finished()
            return None, f"already in {out} (written by another process): not written again"
        if record["status"] == "ok":
            (Path(kwargs["checkpoint_dir"]) / f"{config.run_id}.pt").unlink(missing_ok=True)
        claim.finished()
        return record, ""
    finally:
        claim.release()


def _exit_with_parent(parent: int, threads: int) -> None:
    """Worker initializer: use ``threads`` threads, and exit as soon as the parent process is gone."""
    import threading

    torch.set_num_threads(threads)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _run_in_worker(config_dict: dict, out: str, kwargs: dict) -> tuple[dict | None, str]:
    return _claim_and_run(RunConfig.from_dict(config_dict), Path(out), kwargs)


def _check_writable(path: Path, what: str, folder: bool) -> None:
    if path.exists() and path.is_dir() != folder:
        raise ValueError(f"{what} {path} is {'a file' if folder else 'a directory'}: give {'a folder' if folder else 'a file name'}")
    existing = path if path.exists() else next(p for p in path.absolute().parents if p.exists())
    if not existing.is_dir() and existing != path:
        raise ValueError(f"{what} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK) or (existing == path and folder and not os.access(path, os.X_OK)):
        raise ValueError(f"{what} {path} is not writable ({existing} does not let this user write)")


def check_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a ``torch.device``, refusing unknown names and devices this machine does not have."""
    if device is None:
        return None
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {str(device)!r}; use cpu, cuda, cuda:N or mps ({e})") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} asked for, but this machine has no usable CUDA GPU; use --device cpu (or leave it out)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {device} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ValueError("device mps asked for, but Apple MPS is not available here; use --device cpu (or leave it out)")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device} is not supported; use cpu, cuda or mps")
    return device


def check_targets(out: str | Path, checkpoint_dir: str | Path | None = None, device: str | torch.device | None = None) -> None:
    """Before any run: ``out`` is a writable file path, ``checkpoint_dir`` a writable folder, ``device`` exists here."""
    out = Path(out)
    if out.exists() and not out.is_dir() and not os.access(out, os.W_OK):
        raise ValueError(f"results file {out} is not writable")
    _check_writable(out, "results file", folder=False)
    _check_writable(Path(checkpoint_dir) if checkpoint_dir else out.with_suffix(".checkpoints"), "checkpoint folder", folder=True)
    check_device(device)


def run_grid(
    configs: list[RunConfig],
    out: str | Path,
    jobs: int | None = None,
    data_root: str | Path | None = None,
    device: str | torch.device | None = None,
    checkpoint_dir: str | Path | None = None,
    download: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
    launcher: str = "local",
    **cluster_options,
) -> list[dict]:
    """Run every config not yet in ``out``, ``jobs`` at a time (default 1), appending each result as it finishes.

    Returns the new records. Several jobs share one device (each in its own process), which
    keeps a large GPU busy with small networks. Each run is claimed (a lock per run) before it
    trains and the file is re-read before its record is appended, so two grids on one file never
    train or write a run twice. When a run fails or the grid is interrupted, the pending runs
    are cancelled, the results of finished runs are kept, and the error is raised; workers exit
    when the parent process dies. A diverged run keeps its checkpoint (the last finite epoch).

    ``launcher="slurm"`` (or ``"submitit-local"``) submits one job per unfinished run instead,
    with ``cluster_options`` (``partition``, ``gpus_per_run``, ``time``, ``wait`` ...) and
    ``jobs`` as the most array tasks at once; see :func:`gumbel_lite.cluster.submit_grid`, which
    returns the new records only when it waits.
    """
    if launcher != "local" or cluster_options:
        from .cluster import check_options, submit_grid

        check_options(launcher, **cluster_options)
        if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
            raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
        device = None if device is None else str(device)
        options = dict(data_root=data_root, device=device, checkpoint_dir=checkpoint_dir, download=download, log=log)
        return submit_grid(configs, out, launcher, jobs=jobs, **options, **cluster_options)
    jobs = 1 if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    out = Path(out)
    check_targets(out, checkpoint_dir, device)
    done = {r["run_id"] for r in read_results(out)}
    configs = list(dict.fromkeys(configs))  # a run asked for twice is one run
    todo = [c for c in configs if c.run_id not in done]
    log(f"{len(configs) - len(todo)} of {len(configs)} runs already in {out}; {len(todo)} to run")
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else out.with_suffix(".checkpoints")
    if device is None and todo:
        from .train import default_device

        device = default_device()  # chosen (and its hint printed) once for the whole grid
    if download:  # once, here: N workers downloading into one folder at once would race
        for name in dict.fromkeys(c.dataset for c in todo):
            prepare(name, data_root, download=True)
    kwargs = dict(data_root=data_root, device=str(device) if device is not None else None, checkpoint_dir=checkpoint_dir, download=False)
    new = []

    def finish(config: RunConfig, record: dict | None, note: str) -> None:
        where = f"{config.label} seed {config.seed} ({config.run_id})"
        if record is None:
            log(f"{where}: {note}")
            return
        new.append(record)
        if record["status"] != "ok":
            log(
                f"[{len(new)}/{len(todo)}] {where}: {record['status']}: {record['error']} "
                f"(its last finite epoch is kept in {checkpoint_dir / (config.run_id + '.pt')})"
            )
            return
        log(
            f"[{len(new)}/{len(todo)}] {where}: test {record['metrics']['test_accuracy']:.4f}, "
            f"density {record['metrics']['density']:.3f}, {record['wall_time']:.0f}s"
        )

    if jobs == 1:
        for config in todo:
            finish(config, *_claim_and_run(config, out, {**kwargs, "progress": progress}))
        return new
    import multiprocessing

    # on a CPU each worker gets its share of the cores (never more threads than cores in all)
    threads = max(1, min(torch.get_num_threads(), available_cores()) // jobs)
    pool = ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_exit_with_parent, initargs=(os.getpid(), threads)
    )
    futures = {pool.submit(_run_in_worker, c.to_dict(), str(out), {**kwargs, "progress": False}): c for c in todo}
    error: BaseException | None = None
    try:
        for future in as_completed(futures):
            try:
                finish(futures[future], *future.result())
            except Exception as e:  # noqa: BLE001 - re-raised once the running runs are in
                if error is None:
                    error = e
                    log(f"{futures[future].label} seed {futures[future].seed}: failed: {e}; cancelling the runs not started")
                    for f in futures:
                        f.cancel()
    except BaseException:  # Ctrl-C: stop everything now; finished runs are in the file, the others resume from checkpoints
        for f in futures:
            f.cancel()
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    if error is not None:
        raise error
    return new
