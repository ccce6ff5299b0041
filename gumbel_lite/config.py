"""Typed run configurations and the named grids of experiments.

A :class:`RunConfig` holds everything that defines one run; its :attr:`~RunConfig.run_id` is a
hash of those fields, so a results file knows which runs are already done. Grids are plain
functions returning lists of configs, registered in :data:`GRIDS`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

from .data import DATASETS, PIPELINES
from .masking import METHODS, RESCALES, check_choice
from .models import NETWORKS
from .train import SCHEDULES


@dataclass(frozen=True)
class RunConfig:
    """One training run. Defaults follow the paper (PAPER.md) except ``epochs``/``schedule``."""

    dataset: str = "cifar10"
    network: str = "conv6"
    method: str = "aslp"
    rescale: str | None = "smart"
    signed_constant: bool = False
    augment: bool = False
    tau: float = 1.0
    keep_fraction: float = 0.5
    logit_init: float = 0.0
    epochs: int = 100
    batch_size: int = 256
    mask_lr: float = 50.0
    scale_lr: float = 1e-3
    weight_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    patience: int | None = None
    val_fraction: float = 0.1
    seed: int = 0
    per_class: int | None = None
    test_per_class: int | None = None
    pipeline: str = "device"
    bf16: bool = False
    channels_last: bool = False
    eval_samples: int = 0
    track_test: bool = True
    smoke: bool = False

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, tuple(DATASETS))
        check_choice("network", self.network, NETWORKS)
        check_choice("method", self.method, METHODS)
        check_choice("rescale", self.rescale, RESCALES)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("pipeline", self.pipeline, PIPELINES)
        checks = [
            ("tau", self.tau > 0, "> 0"),
            ("keep_fraction", 0 < self.keep_fraction <= 1, "in (0, 1]"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("mask_lr", self.mask_lr > 0, "> 0"),
            ("scale_lr", self.scale_lr > 0, "> 0"),
            ("weight_lr", self.weight_lr > 0, "> 0"),
            ("val_fraction", 0 <= self.val_fraction < 1, "in [0, 1)"),
            ("logit_init", math.isfinite(self.logit_init), "finite"),
            ("eval_samples", self.eval_samples >= 0, ">= 0"),
            ("patience", self.patience is None or self.patience >= 1, ">= 1 (or None)"),
            ("per_class", self.per_class is None or self.per_class >= 1, ">= 1 (or None)"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {getattr(self, name)!r}")
        if self.method == "dense" and self.rescale is not None:
            raise ValueError("method 'dense' trains the weights themselves; use rescale=None")

    @property
    def run_id(self) -> str:
        """A short hash of the full config: the run's name in results files and checkpoints."""
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        """A human-readable name, e.g. ``conv6 aslp +SR +SC +DA``."""
        tags = [self.network, self.method]
        tags += ["+SR" if self.rescale == "smart" else "+DR" if self.rescale == "dynamic" else ""]
        tags += ["+SC" if self.signed_constant else "", "+DA" if self.augment else ""]
        return " ".join(t for t in tags if t)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config field(s) {sorted(unknown)}; valid fields: {sorted(known)}")
        return cls(**d)


def smoke(config: RunConfig, per_class: int = 20) -> RunConfig:
    """A seconds-long version of ``config`` for CI, flagged ``smoke=True`` so it is never mistaken for a real run."""
    return replace(
        config,
        epochs=1,
        per_class=per_class,
        test_per_class=per_class,
        batch_size=64,
        eval_samples=min(config.eval_samples, 1),
        smoke=True,
    )


def paper_rescale(method: str) -> str:
    """The paper's 'weight rescale' per method: Smart Rescale, except dynamic for Supermask."""
    return "dynamic" if method == "supermask" else "smart"


def paper_cifar10(**overrides) -> list[RunConfig]:
    """Every CIFAR-10 cell of the paper for Conv2, Conv6 and Conv4 (in that order): 36 configs."""
    configs = []
    for network in ("conv2", "conv6", "conv4"):
        for method in ("supermask", "aslp"):
            for signed_constant in (False, True):
                for rescale in (False, True):
                    configs.append(
                        dict(
                            network=network,
                            method=method,
                            signed_constant=signed_constant,
                            rescale=paper_rescale(method) if rescale else None,
                            augment=False,
                        )
                    )
        for method in ("edge_popup", "aslp"):
            for rescale in (False, True):
                configs.append(
                    dict(
                        network=network,
                        method=method,
                        signed_constant=True,
                        rescale=paper_rescale(method) if rescale else None,
                        augment=True,
                    )
                )
    return [RunConfig(**{**c, **overrides}) for c in configs]


def paper_cifar100(**overrides) -> list[RunConfig]:
    """The paper's CIFAR-100 table: Conv2/4/6 × Edge-Popup/ASLP with rescale + signed constant + augmentation."""
    return [
        RunConfig(**{**dict(dataset="cifar100", network=n, method=m, rescale="smart", signed_constant=True, augment=True), **overrides})
        for n in ("conv2", "conv4", "conv6")
        for m in ("edge_popup", "aslp")
    ]


# CPU-sized ablations for the book: Conv2 on 100 images per class, 5 epochs of batch 32. Short
# runs need a larger mask learning rate than the paper's 50 (tuned for hundreds of full epochs).
ABLATION_BASE = dict(
    network="conv2",
    method="aslp",
    rescale="smart",
    per_class=100,
    test_per_class=100,
    epochs=5,
    batch_size=32,
    mask_lr=2000.0,
    track_test=False,
)


def ablation(field_name: str, values: list, **extra) -> Callable[..., list[RunConfig]]:
    def grid(**overrides) -> list[RunConfig]:
        return [RunConfig(**{**ABLATION_BASE, **extra, field_name: v, **overrides}) for v in values]

    grid.__doc__ = f"Ablation over {field_name} in {values} (Conv2, CPU-sized)."
    return grid


def ablation_sampler(**overrides) -> list[RunConfig]:
    """ASLP vs soft samples vs the naive formulation vs Supermask vs Edge-Popup (CPU-sized)."""
    return [
        RunConfig(**{**ABLATION_BASE, "method": m, "rescale": paper_rescale(m), **overrides})
        for m in ("aslp", "aslp_soft", "naive_gumbel", "supermask", "edge_popup")
    ]


def ablation_options(**overrides) -> list[RunConfig]:
    """ASLP: rescale (none / smart / dynamic) × Signed Constant, and augmentation for SR ± SC (CPU-sized)."""
    cells = [dict(rescale=r, signed_constant=sc) for r in (None, "smart", "dynamic") for sc in (False, True)]
    cells += [dict(rescale="smart", signed_constant=sc, augment=True) for sc in (False, True)]
    return [RunConfig(**{**ABLATION_BASE, **c, **overrides}) for c in cells]


def ablations(**overrides) -> list[RunConfig]:
    """Every CPU-sized ablation of the book, each distinct config once."""
    grids = [GRIDS[name](**overrides) for name in GRIDS if name.startswith("ablation-")]
    return list(dict.fromkeys(c for g in grids for c in g))


GRIDS: dict[str, Callable[..., list[RunConfig]]] = {
    "paper-cifar10": paper_cifar10,
    "paper-cifar100": paper_cifar100,
    "ablation-tau": ablation("tau", [0.5, 1.0, 2.0, 4.0]),
    "ablation-init": ablation("logit_init", [-2.0, 0.0, 2.0]),
    "ablation-mask-lr": ablation("mask_lr", [200.0, 2000.0, 20000.0]),
    "ablation-sampler": ablation_sampler,
    "ablation-options": ablation_options,
}
GRIDS["ablations"] = ablations
"""Named grids; each takes keyword overrides applied to every config (e.g. ``epochs=50``)."""


def grid(name: str, seeds: list[int] | tuple[int, ...] = (0,), **overrides) -> list[RunConfig]:
    """The configs of grid ``name``, once per seed, with ``overrides`` applied to each."""
    check_choice("grid", name, tuple(GRIDS))
    return [replace(c, seed=s) for s in seeds for c in GRIDS[name](**overrides)]
