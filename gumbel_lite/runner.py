"""Run configs and keep their results: one JSON line per finished run, appended atomically.

A results file is append-only. Each line holds the full config, its ``run_id``, the metrics, a
per-epoch history summary and provenance (device, versions, git commit, seed, wall time). A run
whose ``run_id`` is already in the file is skipped, so an interrupted grid resumes where it
stopped; an interrupted run resumes from its per-epoch checkpoint.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from . import models
from .config import RunConfig
from .data import DATASETS, CifarData
from .masking import mask_model
from .train import History, device_name, seed_everything, train

HISTORY_KEYS = ("loss", "train_accuracy", "val_accuracy", "test_accuracy", "epoch_time", "density", "flip_rate", "mean_p_sel")


def git_commit() -> str:
    """The commit of the package's repository (``+dirty`` if it has local changes), or ``unknown``."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if sha.returncode != 0:
        return "unknown"
    return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def provenance(device: torch.device) -> dict:
    import torchvision

    return {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one JSON line atomically: one ``write`` under an exclusive lock, then fsync."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_results(path: str | Path) -> list[dict]:
    """All complete records of a results file (a torn last line, if any, is ignored)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
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
    """Per-epoch curves (lists) and the last epoch's per-layer density and scales."""
    summary = {k: history.column(k) for k in HISTORY_KEYS if history.epochs and k in history.epochs[0]}
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
            checkpoint=checkpoint,
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
        "precision": {"bf16": history.bf16, "channels_last": history.channels_last},
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


def _run_in_worker(config_dict: dict, kwargs: dict) -> dict:
    threads = kwargs.pop("threads")
    torch.set_num_threads(threads)
    return run(RunConfig.from_dict(config_dict), **kwargs)


def run_grid(
    configs: list[RunConfig],
    out: str | Path,
    jobs: int = 1,
    data_root: str | Path | None = None,
    device: str | torch.device | None = None,
    checkpoint_dir: str | Path | None = None,
    download: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Run every config not yet in ``out``, ``jobs`` at a time, appending each result as it finishes.

    Returns the new records. Several jobs share one device (each in its own process), which
    keeps a large GPU busy with small networks.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    done = {r["run_id"] for r in read_results(out)}
    todo = [c for c in dict.fromkeys(configs) if c.run_id not in done]
    log(f"{len(configs) - len(todo)} of {len(configs)} runs already in {out}; {len(todo)} to run")
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else Path(out).with_suffix(".checkpoints")
    if device is None and todo:
        from .train import default_device

        device = default_device()  # chosen (and its hint printed) once for the whole grid
    kwargs = dict(data_root=data_root, device=str(device) if device is not None else None, checkpoint_dir=checkpoint_dir, download=download)
    new = []

    def finish(config: RunConfig, record: dict) -> None:
        append_jsonl(out, record)
        (checkpoint_dir / f"{config.run_id}.pt").unlink(missing_ok=True)
        new.append(record)
        if record["status"] != "ok":
            log(f"[{len(new)}/{len(todo)}] {config.label} seed {config.seed}: {record['status']}: {record['error']}")
            return
        log(
            f"[{len(new)}/{len(todo)}] {config.label} seed {config.seed}: test {record['metrics']['test_accuracy']:.4f}, "
            f"density {record['metrics']['density']:.3f}, {record['wall_time']:.0f}s"
        )

    if jobs == 1:
        for config in todo:
            finish(config, run(config, progress=progress, **kwargs))
        return new
    import multiprocessing

    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        # on a CPU each worker gets its share of the cores (never more threads than cores in all)
        threads = max(1, min(torch.get_num_threads(), available_cores()) // jobs)
        futures = {pool.submit(_run_in_worker, c.to_dict(), {**kwargs, "progress": False, "threads": threads}): c for c in todo}
        for future in as_completed(futures):
            finish(futures[future], future.result())
    return new
