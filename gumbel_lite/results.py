"""Reading results files for figures and tables: smoke runs are never shown as results.

Results are JSON lines written by :func:`gumbel_lite.run_grid`. :func:`load_results` drops runs
flagged ``smoke`` (seconds-long code checks) unless asked for them; :func:`provenance` and
:func:`stamp` put where, when and with what the runs were made under every figure. pandas and
matplotlib are imported only when these functions are called (they are book dependencies).
"""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

from .config import RunConfig
from .runner import read_results


def load_results(path: str | Path, smoke: bool = False) -> list[dict]:
    """The runs of one results file. Smoke runs are dropped (with a printed note) unless ``smoke``."""
    path = Path(path)
    if not path.exists():
        print(f"{path}: no such file (not run yet)")
        return []
    records = read_results(path)  # malformed lines and repeated runs are skipped with a warning
    if smoke:
        print(f"SMOKE MODE: {len(records)} seconds-long run(s) from {path.name}.")
        print("They test the code of this chapter; their numbers mean nothing.")
        return records
    flagged = [r for r in records if r.get("smoke")]
    if flagged:
        print(f"Ignored {len(flagged)} smoke run(s) in {path.name}: never shown.")
    return [r for r in records if not r.get("smoke")]


def results_frame(records: list[dict]):
    """A pandas DataFrame, one row per run: config, status, test/val accuracy in %, density, history.

    ``sampled_acc`` is the mean test accuracy of the sampled masks (runs with ``eval_samples``
    > 0, e.g. Supermask as its authors score it), in %. A diverged run (status ``"diverged"``:
    its loss became NaN) has NaN metrics and no history.
    """
    import pandas as pd

    def number(value, scale=1.0):
        return float("nan") if value is None else scale * value

    known = set(RunConfig().to_dict())
    rows, unknown = [], {}
    for r in records:
        m = r["metrics"]
        for name in set(r["config"]) - known:
            unknown.setdefault(name, r["run_id"])
        rows.append(
            {
                **r["config"],
                "rescale": r["config"].get("rescale") or "none",
                "status": r.get("status", "ok"),
                "test_acc": number(m.get("test_accuracy"), 100),
                "sampled_acc": number(m.get("sampled_test_accuracy_mean"), 100),
                "val_acc": number(m.get("best_val_accuracy"), 100),
                "density": number(m.get("density")),
                "history": r.get("history") or {},
                "wall_time": number(r.get("wall_time")),
                "label": r.get("label"),
                "run_id": r["run_id"],
            }
        )
    if unknown:
        warnings.warn(
            "config field(s) this version does not know, kept as columns: "
            + ", ".join(f"{k} (e.g. run {v})" for k, v in sorted(unknown.items())),
            stacklevel=2,
        )
    columns = [
        *RunConfig().to_dict(),
        *sorted(unknown),
        "status",
        "test_acc",
        "sampled_acc",
        "val_acc",
        "density",
        "history",
        "wall_time",
        "label",
        "run_id",
    ]
    return pd.DataFrame(rows, columns=columns)


def mean_std(frame, by, value: str = "test_acc"):
    """Mean, standard deviation and number of runs of ``value`` in each group of ``by``."""
    stats = frame.groupby(by, dropna=False, sort=False)[value]
    return stats.agg(mean="mean", std="std", n="count").reset_index()


def paired_difference(deltas, confidence: float = 0.95) -> dict:
    """Statistics of paired differences (one per seed): mean, std, n, a t interval and an exact sign-flip p-value.

    The interval is ``mean ± t(n − 1) · std / √n`` (it assumes roughly normal differences).
    The sign-flip p-value is exact and assumption-free: the fraction of the 2ⁿ sign patterns of
    the differences whose mean is at least as far from 0 as the observed one (two-sided). With
    n seeds it can never be below 2 / 2ⁿ (0.25 for 3 seeds), so it shows how little a handful of
    seeds can prove on its own. ``verdict`` says *higher* / *lower* when the interval excludes
    0, *within noise* otherwise.
    """
    import itertools

    import numpy as np
    from scipy import stats

    d = np.asarray([x for x in deltas if np.isfinite(x)], dtype=float)
    n = len(d)
    out = dict(mean=float("nan"), std=float("nan"), n=n, ci_low=float("nan"), ci_high=float("nan"), p_signflip=float("nan"))
    if n == 0:
        return {**out, "verdict": "no run finished"}
    out["mean"] = float(d.mean())
    if n == 1:
        return {**out, "verdict": "a single seed: no interval"}
    out["std"] = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * out["std"] / np.sqrt(n)
    out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
    means = [abs((d * signs).mean()) for signs in itertools.product((1, -1), repeat=n)]
    out["p_signflip"] = float(np.mean([m >= abs(out["mean"]) - 1e-12 for m in means]))
    side = "higher" if out["ci_low"] > 0 else "lower" if out["ci_high"] < 0 else "within noise"
    out["verdict"] = f"{side}; {confidence:.0%} interval {out['ci_low']:+.1f} to {out['ci_high']:+.1f}"
    return out


def provenance(records: list[dict]) -> str:
    """Where, when and with what the runs were made, in one line."""
    if not records:
        return "no runs"

    def joined(values) -> str:
        return ", ".join(sorted({str(v) for v in values}))

    commits = joined(r["git_commit"][:7] + "+dirty" * r["git_commit"].endswith("+dirty") for r in records)
    finished = sorted(r["finished_at"][:16].replace("T", " ") for r in records)
    smoke = "SMOKE RUNS, NOT RESULTS · " if any(r.get("smoke") for r in records) else ""
    diverged = sum(r.get("status", "ok") == "diverged" for r in records)
    count = f"{len(records)} runs" + (f" ({diverged} diverged)" if diverged else "")
    return (
        f"{smoke}{count} · seeds {joined(r['seed'] for r in records)} · {joined(r['device_name'] for r in records)} · "
        f"torch {joined(r['torch'] for r in records)} · commit {commits} · finished {finished[0]} to {finished[-1]} UTC"
    )


def stamp(fig, records: list[dict], note: str | None = None) -> None:
    """Write the provenance of ``records`` (after ``note``) under a figure; watermark smoke runs."""
    text = provenance(records) if note is None else f"{note}\nours: {provenance(records)}"
    text = "\n".join(textwrap.fill(line, 140) for line in text.splitlines())
    if not fig.get_layout_engine():
        fig.tight_layout()
    # Below the axes, left-aligned, in a size that can be read; saved figures keep it (bbox "tight").
    fig.text(0.01, -0.02, text, ha="left", va="top", fontsize=8.5, color="0.3")
    if any(r.get("smoke") for r in records):
        fig.text(
            0.5,
            0.5,
            "SMOKE RUNS — NOT RESULTS",
            ha="center",
            va="center",
            fontsize=26,
            color="red",
            alpha=0.35,
            rotation=15,
            transform=fig.transFigure,
        )
