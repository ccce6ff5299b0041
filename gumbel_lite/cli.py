"""Command line: ``python -m gumbel_lite {train,grid,grids,prepare,summary,status,collect,reference,doctor} ...``.

Flags of ``train`` are derived from :class:`~gumbel_lite.config.RunConfig`, so every field of a
run can be set from the shell and nothing is configured twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path

from .cluster import LAUNCHERS, ClusterError, check_options
from .config import GRIDS, RunConfig, grid, smoke
from .data import DatasetError, prepare
from .masking import METHODS
from .runner import check_device, check_targets, read_results, run_grid
from .train import LAYER_RATES, MASK_OPTIMIZERS, SCHEDULES, CheckpointError

CHOICES = {
    "dataset": ("cifar10", "cifar100"),
    "network": ("conv2", "conv4", "conv6"),
    "method": METHODS,
    "rescale": ("none", "smart", "dynamic"),
    "schedule": SCHEDULES,
    "mask_optimizer": MASK_OPTIMIZERS,
    "layer_lr": LAYER_RATES,
    "pipeline": ("device", "dataloader"),
    "signed_constant_layers": ("all", "conv"),
}
# bf16 autocast and channels_last: "auto" (on where the device computes in bf16 natively), on, off
SWITCHES = {"bf16", "channels_last"}
SWITCH_VALUES = {"auto": "auto", "on": True, "off": False}
# the fields --smoke sets itself
SMOKE_FIELDS = ("epochs", "batch_size", "per_class", "test_per_class")


def _optional(kind):
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__
    return parse


def add_config_flags(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    """One ``--flag`` per RunConfig field (``--no-flag`` for booleans; ``none`` for optional values)."""
    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        if f.name == "smoke":  # set by --smoke, which also shrinks the run
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if defaults else None
        hint = hints[f.name]
        if f.name in SWITCHES:
            parser.add_argument(flag, choices=tuple(SWITCH_VALUES), default="auto" if defaults else None)
        elif hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif f.name in CHOICES:
            parser.add_argument(flag, choices=CHOICES[f.name], default=default)
        else:
            base = next(t for t in typing.get_args(hint) or (hint,) if t is not type(None))
            parser.add_argument(flag, type=_optional(base), default=default, metavar=base.__name__.upper())


def config_from_args(args: argparse.Namespace, skip_unset: bool = False) -> dict:
    values = {}
    for f in dataclasses.fields(RunConfig):
        if f.name == "smoke":
            continue
        value = getattr(args, f.name)
        if skip_unset and value is None:
            continue
        if f.name in SWITCHES:
            value = SWITCH_VALUES[value]
        values[f.name] = None if f.name == "rescale" and value == "none" else value
    return values


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smoke", action="store_true", help="seconds-long runs for CI (flagged smoke in the results)")
    parser.add_argument("--out", type=Path, default=Path("results.jsonl"), help="results file (JSON lines, appended)")
    parser.add_argument("--data-root", type=Path, default=None, help="prepared-cache root (default $GUMBEL_LITE_DATA or data/)")
    parser.add_argument("--download", action="store_true", help="let torchvision download a missing dataset")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--checkpoint-dir", type=Path, default=None, help="per-run checkpoints (default: next to --out)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_grid_flags(parser: argparse.ArgumentParser) -> None:
    overrides = parser.add_argument_group("overrides applied to every run of the grid")
    add_config_flags(overrides, defaults=False)


def add_launcher_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster: one job per unfinished run (pip install 'gumbel-lite[cluster]')")
    group.add_argument("--launcher", choices=LAUNCHERS, default="local", help="local: this machine; slurm; submitit-local (tests)")
    group.add_argument("--partition", default=None, help="Slurm partition")
    group.add_argument("--gpus-per-run", type=int, default=None, help="GPUs per job (Slurm default 1)")
    group.add_argument("--cpus-per-run", type=int, default=None, help="CPU cores per job (default: the partition's)")
    group.add_argument("--time", default=None, help="time limit per job, as Slurm writes it (default 4:00:00); longer runs are requeued")
    group.add_argument("--slurm-arg", action="append", default=None, metavar="KEY=VALUE", help="more sbatch options, e.g. account=abc")
    group.add_argument("--wait", action="store_true", help="wait for the jobs and merge their results into --out")


def launcher_options(args: argparse.Namespace) -> dict:
    """The cluster options given on the command line (``None`` for those not given)."""
    slurm_args = {}
    for item in args.slurm_arg or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--slurm-arg takes KEY=VALUE (an sbatch option without its dashes), got {item!r}")
        slurm_args[key] = value
    names = ("partition", "gpus_per_run", "cpus_per_run", "time", "wait")
    return {**{k: getattr(args, k) for k in names}, "slurm_args": slurm_args or None}


def grid_configs(args: argparse.Namespace, parser: argparse.ArgumentParser, name: str) -> list[RunConfig]:
    """The runs of grid ``name`` with the seeds and overrides of the command line."""
    try:
        seeds = None if args.seeds is None else [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    over = config_from_args(args, skip_unset=True)
    if "seed" in over:
        parser.error("a grid takes its seeds from --seeds (e.g. --seeds 7), not --seed")
    return grid(name, seeds, **over)


def apply_smoke(args: argparse.Namespace, configs: list[RunConfig]) -> list[RunConfig]:
    """``configs`` shrunk to seconds-long runs if ``--smoke`` was given (warning about the flags it overrides)."""
    if not args.smoke:
        return configs
    overridden = [f for f in SMOKE_FIELDS if getattr(args, f) not in (None, RunConfig.__dataclass_fields__[f].default)]
    if overridden:
        flags = ", ".join("--" + f.replace("_", "-") for f in overridden)
        print(f"warning: --smoke sets its own {flags} (seconds-long runs); the values given are not used", file=sys.stderr)
    return [smoke(c) for c in configs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gumbel_lite", description="Extract subnetworks of random networks with Gumbel-softmax masks."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="one run", description="Train one configuration and append its result.")
    add_config_flags(p_train)
    add_run_flags(p_train)
    p_grid = sub.add_parser("grid", help="a named grid of runs", description="Run a named grid; finished runs are skipped.")
    p_grid.add_argument("name", choices=sorted(GRIDS))
    p_grid.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2 (default: the grid's own, 0 for most)")
    p_grid.add_argument("--jobs", type=int, default=None, help="runs at once (processes sharing the device; Slurm: array tasks at once)")
    p_grid.add_argument("--dry-run", action="store_true", help="list the runs and exit")
    add_grid_flags(p_grid)
    add_run_flags(p_grid)
    add_launcher_flags(p_grid)
    sub.add_parser("grids", help="list the named grids")
    p_prep = sub.add_parser("prepare", help="download (torchvision) and convert a dataset into the prepared cache")
    p_prep.add_argument("dataset", choices=CHOICES["dataset"])
    p_prep.add_argument("--data-root", type=Path, default=None, help="prepared-cache root (default $GUMBEL_LITE_DATA or data/)")
    p_prep.add_argument("--download", action="store_true", help="allow the download")
    p_sum = sub.add_parser("summary", help="summarise a results file")
    p_sum.add_argument("results", type=Path)
    p_status = sub.add_parser(
        "status",
        help="done / running / failed / missing runs per cell",
        description="Merge finished jobs into RESULTS, then count the runs of each cell (of --grid, else of every run known).",
    )
    p_status.add_argument("results", type=Path)
    p_status.add_argument("--grid", choices=sorted(GRIDS), default=None, help="the grid submitted (its unsubmitted runs count as missing)")
    p_status.add_argument("--seeds", default=None, help="the grid's --seeds")
    p_status.add_argument("--smoke", action="store_true", help="the grid was submitted with --smoke")
    add_grid_flags(p_status)
    p_ref = sub.add_parser(
        "reference",
        help="train and store the book's reference run",
        description="Train the reference run (Conv2, ASLP + Smart Rescale, a CIFAR-10 subset) and store each seed.",
    )
    p_ref.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p_ref.add_argument("--out", type=Path, default=None, help="folder (default: data/reference of this checkout)")
    p_ref.add_argument("--device", default="cpu", help="cpu, cuda or mps (default cpu)")
    p_ref.add_argument("--data-root", type=Path, default=None, help="prepared-cache root (default $GUMBEL_LITE_DATA or data/)")
    p_ref.add_argument("--download", action="store_true", help="download CIFAR-10 if the cache is missing")
    p_doc = sub.add_parser(
        "doctor",
        help="what this machine gives a run: device, precision and why, versions, data, speed",
        description="Report the device, the precision and memory format 'auto' picks there and why, versions, the data cache "
        "and the Conv6 training speed: the first lines of any bug report.",
    )
    p_doc.add_argument("--device", default=None, help="cuda, cuda:N, mps or cpu (default: the best available)")
    p_doc.add_argument("--data-root", type=Path, default=None, help="prepared-cache root (default $GUMBEL_LITE_DATA or data/)")
    p_doc.add_argument("--no-speed", action="store_true", help="skip the few training steps that measure the speed")
    p_doc.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p_collect = sub.add_parser("collect", help="merge the records of finished cluster jobs into a results file (idempotent)")
    p_collect.add_argument("results", type=Path)
    args = parser.parse_args(argv)

    if args.command == "grids":
        for name, fn in sorted(GRIDS.items()):
            print(f"{name:18s} {len(fn())} runs per seed  {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0
    if args.command == "doctor":
        from .doctor import doctor

        try:
            device = check_device(args.device)
        except ValueError as e:
            parser.error(str(e))
        report = doctor(device, args.data_root, speed=not args.no_speed, log=(lambda _: None) if args.json else print)
        if args.json:
            print(json.dumps(report, sort_keys=True))
        return 0
    if args.command == "summary":
        return summary(args.results)
    if args.command == "reference":
        return reference_command(args, parser)
    if args.command in ("status", "collect"):
        return cluster_command(args, parser)
    if args.command == "prepare":
        try:
            print(prepare(args.dataset, args.data_root, download=args.download))
        except DatasetError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    try:
        if args.command == "train":
            configs = [RunConfig.from_dict(config_from_args(args))]
            jobs = 1
        else:
            configs = grid_configs(args, parser, args.name)
            jobs = args.jobs
            if jobs is not None and jobs < 1:
                parser.error(f"--jobs must be >= 1, got {jobs}")
            cluster = launcher_options(args)
            check_options(args.launcher, cli=True, **cluster, **({"jobs": jobs} if args.launcher != "local" else {}))
        configs = apply_smoke(args, configs)
    except ValueError as e:
        parser.error(str(e))
    if getattr(args, "dry_run", False):
        for c in configs:
            print(c.run_id, c.label, f"seed={c.seed}", f"epochs={c.epochs}")
        return 0
    try:  # before any work: a bad path or device would otherwise surface only after training
        on_cluster = args.command == "grid" and args.launcher != "local"
        check_targets(args.out, args.checkpoint_dir, None if on_cluster else args.device)  # a cluster's device is its nodes'
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        new = run_grid(
            configs,
            args.out,
            jobs=jobs,
            data_root=args.data_root,
            device=args.device,
            checkpoint_dir=args.checkpoint_dir,
            download=args.download,
            progress=False if args.no_progress else None,
            **({"launcher": args.launcher, **cluster} if args.command == "grid" and args.launcher != "local" else {}),
        )
    except (ImportError, ClusterError) as e:  # no submitit, or no Slurm, for a cluster launcher
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (DatasetError, CheckpointError, FloatingPointError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        print(f"(results already in {args.out} are kept)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished runs are in {args.out}; re-run the same command to resume", file=sys.stderr)
        return 130
    failed = [r for r in new if r.get("status", "ok") != "ok"]
    if failed:
        print(f"error: {len(failed)} run(s) did not finish well (recorded in {args.out}, not retried):", file=sys.stderr)
        for r in failed:
            print(f"  {r['label']} seed {r['seed']} ({r['run_id']}): {r['status']}: {r.get('error')}", file=sys.stderr)
        return 1
    return 0


def summary(path: Path) -> int:
    if path.is_dir() or not path.exists():
        print(f"error: {path} is {'a directory' if path.is_dir() else 'not a file'}: pass a results file (.jsonl)", file=sys.stderr)
        return 1
    records = read_results(path)  # malformed lines are skipped with a warning naming their line
    if not records:
        print(f"no results in {path}", file=sys.stderr)
        return 1
    try:
        for r in records:
            m = r["metrics"]
            accuracy, wall_time = m.get("test_accuracy"), r.get("wall_time")
            print(
                json.dumps(
                    {
                        "label": r.get("label"),
                        "seed": r.get("seed"),
                        "smoke": r.get("smoke"),
                        "status": r.get("status", "ok"),
                        "test_accuracy": round(accuracy, 4) if isinstance(accuracy, (int, float)) else None,
                        "density": m.get("density"),
                        "epochs": m.get("epochs_run"),
                        "wall_time": round(wall_time, 1) if isinstance(wall_time, (int, float)) else None,
                    }
                )
            )
        sys.stdout.flush()
    except BrokenPipeError:  # `summary … | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def cluster_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``collect RESULTS``: merge the line files of finished jobs; ``status RESULTS``: that, then counts per cell."""
    from .cluster import collect, known_configs, log_path, status_table

    path = args.results
    if path.is_dir():
        print(f"error: {path} is a directory: pass a results file (.jsonl)", file=sys.stderr)
        return 1
    try:
        collect(path)
        if args.command == "collect":
            return 0
        if args.grid is not None:
            try:
                configs = apply_smoke(args, grid_configs(args, parser, args.grid))
            except ValueError as e:
                parser.error(str(e))
        else:
            configs = known_configs(path)
        rows, totals, failed = status_table(configs, path)
    except (ImportError, OSError, TimeoutError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not rows:
        print(f"no runs known for {path}: give --grid NAME (with the grid's --seeds / --smoke)", file=sys.stderr)
        return 1
    width = max(len("cell"), *(len(r[0]) for r in rows))
    print(f"{'cell':{width}s}  {'done':>7s}  {'running':>7s}  {'failed':>7s}  {'missing':>7s}")
    for name, *counts in rows:
        print(f"{name:{width}s}  " + "  ".join(f"{n:7d}" for n in counts))
    print(f"{f'total ({len(configs)} runs)':{width}s}  " + "  ".join(f"{totals[s]:7d}" for s in totals))
    for config, job in failed:
        print(f"failed: {config.label} seed {config.seed} ({config.run_id}), job {job.get('job_id')}, log {log_path(job)}")
    if totals["failed"] or totals["missing"]:
        print(f"re-run the grid command to submit the {totals['failed']} failed and {totals['missing']} missing run(s)")
    return 0


def reference_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .reference import reference_data, save_reference, train_reference

    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, e.g. 0,1,2; got {args.seeds!r}")
    if any(s < 0 for s in seeds):
        parser.error(f"--seeds must be >= 0, got {args.seeds!r}")
    try:
        check_device(args.device)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        data = reference_data(args.device, root=args.data_root, download=args.download)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for seed in seeds:
        run = train_reference(seed, data)
        path = save_reference(run, args.out)
        h = run.history
        print(f"seed {seed}: test accuracy {h.test_accuracy:.3f}, density {h.final_density:.3f}, {h.wall_time:.0f} s -> {path}")
    return 0
