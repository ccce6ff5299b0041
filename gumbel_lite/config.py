"""Typed run configurations and the named grids of experiments.

A :class:`RunConfig` holds everything that defines one run; its :attr:`~RunConfig.run_id` is a
hash of those fields, so a results file knows which runs are already done. Grids are plain
functions returning lists of configs, registered in :data:`GRIDS`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

import torch

from .checks import check_choice, check_number, check_switch
from .data import DATASETS, PIPELINES
from .masking import METHODS, RESCALES, SIGNED_CONSTANT_LAYERS
from .models import NETWORKS
from .train import LAYER_RATES, MASK_OPTIMIZERS, SCHEDULES

FLOAT32_MAX = torch.finfo(torch.float32).max


@dataclass(frozen=True)
class RunConfig:
    """One training run. Defaults follow the paper (PAPER.md) except where the book argues otherwise.

    The package's own defaults differ from the authors' code in ``epochs``/``schedule``/
    ``patience`` (100 cosine epochs instead of up to 1000 constant ones with patience 100),
    ``normalize`` (always standardise; the authors standardise only with augmentation), ``bias``
    (bias-free layers; the authors keep random frozen biases) and ``signed_constant_layers``
    (every layer; the authors' code reaches only the convolutions). The ``paper-*`` grids set
    each of these the authors' way; chapter 9 of the book lists every difference.
    ``bf16`` / ``channels_last``: ``"auto"`` (on where the device computes in bf16 natively),
    ``True`` or ``False``. ``eval_samples`` K > 0 also scores K sampled masks (Supermask's
    own evaluation: the mean over 10). ``mask_optimizer`` (``"sgd"`` | ``"adam"``), ``layer_lr``
    (``"global"`` | ``"weight_std"``) and ``decay_fraction`` (of schedule ``"tail"``) set how
    the mask logits are optimised; the scales always stay on SGD at ``scale_lr``.
    """

    dataset: str = "cifar10"
    network: str = "conv6"
    method: str = "aslp"
    rescale: str | None = "smart"
    signed_constant: bool = False
    signed_constant_layers: str = "all"
    augment: bool = False
    normalize: bool = True
    bias: bool = False
    tau: float = 1.0
    keep_fraction: float = 0.5
    logit_init: float = 0.0
    epochs: int = 100
    batch_size: int = 256
    mask_lr: float = 50.0
    mask_optimizer: str = "sgd"
    layer_lr: str = "global"
    scale_lr: float = 1e-3
    weight_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    decay_fraction: float = 0.25
    patience: int | None = None
    val_fraction: float = 0.1
    seed: int = 0
    per_class: int | None = None
    test_per_class: int | None = None
    pipeline: str = "device"
    bf16: bool | str = "auto"
    channels_last: bool | str = "auto"
    eval_samples: int = 0
    track_test: bool = True
    smoke: bool = False

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, tuple(DATASETS))
        check_choice("network", self.network, NETWORKS)
        check_choice("method", self.method, METHODS)
        check_choice("rescale", self.rescale, RESCALES)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("mask_optimizer", self.mask_optimizer, MASK_OPTIMIZERS)
        check_choice("layer_lr", self.layer_lr, LAYER_RATES)
        check_choice("pipeline", self.pipeline, PIPELINES)
        check_choice("signed_constant_layers", self.signed_constant_layers, SIGNED_CONSTANT_LAYERS)
        check_switch("bf16", self.bf16)
        check_switch("channels_last", self.channels_last)
        numbers = [
            ("tau", dict(above=0)),
            ("keep_fraction", dict(above=0, maximum=1)),
            ("logit_init", {}),
            ("epochs", dict(integer=True, minimum=1)),
            ("batch_size", dict(integer=True, minimum=1)),
            ("mask_lr", dict(above=0)),
            ("scale_lr", dict(above=0)),
            ("weight_lr", dict(above=0)),
            ("momentum", dict(minimum=0)),
            ("decay_fraction", dict(above=0, maximum=1)),
            ("weight_decay", dict(minimum=0)),
            ("val_fraction", dict(minimum=0, below=1)),
            ("seed", dict(integer=True, minimum=0, below=2**32)),
            ("eval_samples", dict(integer=True, minimum=0)),
            ("patience", dict(integer=True, minimum=1, optional=True)),
            ("per_class", dict(integer=True, minimum=1, optional=True)),
            ("test_per_class", dict(integer=True, minimum=1, optional=True)),
        ]
        for name, rule in numbers:  # stored as plain int / float: 300 and 300.0 (or np.int64(1) and 1) are one run
            object.__setattr__(self, name, check_number(name, getattr(self, name), **rule))
        for name in ("tau", "logit_init", "mask_lr", "scale_lr", "weight_lr", "momentum", "weight_decay"):
            if abs(getattr(self, name)) > FLOAT32_MAX:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} does not fit in float32, the precision of the parameters: "
                    f"use |{name}| <= {FLOAT32_MAX:.3g}"
                )
        if self.method == "dense" and self.rescale is not None:
            raise ValueError("method 'dense' trains the weights themselves; use rescale=None")

    @property
    def run_id(self) -> str:
        """A short hash of the full config: the run's name in results files and checkpoints.

        Fields added after the first results were committed (:data:`ADDED_FIELDS`) enter the hash
        only when they differ from their default, so every earlier run keeps its id.
        """
        d = {k: v for k, v in asdict(self).items() if not (k in ADDED_FIELDS and v == ADDED_FIELDS[k])}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        """A human-readable name, e.g. ``conv6 aslp +SR +SC +DA`` (``tau=…`` / ``init=…`` when not the default)."""
        tags = [self.network, self.method]
        tags += ["+SR" if self.rescale == "smart" else "+DR" if self.rescale == "dynamic" else ""]
        tags += ["+SC" if self.signed_constant else "", "+DA" if self.augment else ""]
        tags += [f"tau={self.tau:g}" if self.tau != 1.0 else "", f"init={self.logit_init:g}" if self.logit_init != 0.0 else ""]
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


ADDED_FIELDS = {"mask_optimizer": "sgd", "layer_lr": "global", "decay_fraction": 0.25}
"""Fields added to :class:`RunConfig` after results were committed, with the default that keeps old run ids."""


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


def paper_rescale(method: str) -> str | None:
    """The paper's 'weight rescale' per method: Smart Rescale for ASLP, dynamic for Supermask, none for Edge-Popup.

    The authors' Edge-Popup has no scale and ignores the rescale flag, so their Edge-Popup
    cells with and without 'weight rescale' ran the same configuration.
    """
    return {"supermask": "dynamic", "edge_popup": None}.get(method, "smart")


# The authors' code (N0ciple/ASLP), field by field; chapter 9 of the book lists every difference.
AUTHORS_PROTOCOL = dict(bias=True, signed_constant_layers="conv")
AUTHORS_BUDGET = dict(epochs=1000, schedule="constant", patience=100)


def paper_cell(
    dataset: str, network: str, method: str, weight_rescale: bool, signed_constant: bool, data_augmentation: bool, **overrides
) -> RunConfig:
    """The run of one published cell (a row of ``data/paper_results.csv``), as the authors ran it.

    Standardised inputs only with augmentation (their pipeline without it is bare ``ToTensor()``),
    random frozen biases, Signed Constant in the convolutions only, Supermask scored on the mean
    of 10 sampled masks (its deterministic mask is recorded too), Edge-Popup without a scale.
    ``overrides`` (e.g. the budget) apply last.
    """
    cell = dict(
        dataset=dataset,
        network=network,
        method=method,
        rescale=paper_rescale(method) if weight_rescale else None,
        signed_constant=signed_constant,
        augment=data_augmentation,
        normalize=data_augmentation,
        eval_samples=10 if method == "supermask" else 0,
        **AUTHORS_PROTOCOL,
    )
    return RunConfig(**{**cell, **overrides})


def paper_cells(dataset: str = "cifar10", networks: tuple[str, ...] = ("conv2", "conv6", "conv4")) -> list[dict]:
    """The published cells as the paper describes them (``weight_rescale`` etc.), networks in the given order."""
    if dataset == "cifar100":
        return [
            dict(dataset=dataset, network=n, method=m, weight_rescale=True, signed_constant=True, data_augmentation=True)
            for n in networks
            for m in ("edge_popup", "aslp")
        ]
    cells = []
    for network in networks:
        for method in ("supermask", "aslp"):
            for sc in (False, True):
                for wr in (False, True):
                    cells.append(dict(network=network, method=method, weight_rescale=wr, signed_constant=sc, data_augmentation=False))
        for method in ("edge_popup", "aslp"):
            for wr in (False, True):
                cells.append(dict(network=network, method=method, weight_rescale=wr, signed_constant=True, data_augmentation=True))
    return [dict(dataset=dataset, **c) for c in cells]


def _unique(configs: list[RunConfig]) -> list[RunConfig]:
    return list(dict.fromkeys(configs))


def paper_cifar10(**overrides) -> list[RunConfig]:
    """Every CIFAR-10 cell of the paper (Conv2, Conv6, Conv4), the authors' protocol, our budget: 33 runs."""
    return _unique([paper_cell(**c, **overrides) for c in paper_cells("cifar10")])


def paper_cifar100(**overrides) -> list[RunConfig]:
    """The paper's CIFAR-100 table: Conv2/4/6 × Edge-Popup/ASLP with rescale + signed constant + augmentation."""
    return _unique([paper_cell(**c, **overrides) for c in paper_cells("cifar100", ("conv2", "conv4", "conv6"))])


def authors_cifar10(**overrides) -> list[RunConfig]:
    """``paper-cifar10`` with the authors' budget: up to 1000 constant-rate epochs, early stopping after 100 (GPU)."""
    return paper_cifar10(**{**AUTHORS_BUDGET, **overrides})


def authors_cifar100(**overrides) -> list[RunConfig]:
    """``paper-cifar100`` with the authors' budget: up to 1000 constant-rate epochs, early stopping after 100 (GPU)."""
    return paper_cifar100(**{**AUTHORS_BUDGET, **overrides})


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


ABLATION_MASK_LRS = (200.0, 2000.0, 20000.0)


def ablation_sampler(**overrides) -> list[RunConfig]:
    """ASLP vs soft samples vs the naive formulation vs Supermask vs Edge-Popup, each at 3 mask lrs (CPU-sized).

    Each method is compared at its own best learning rate, chosen on the validation split.
    Supermask is also scored on 10 sampled masks, as its authors score it.
    """
    return [
        RunConfig(
            **{
                **ABLATION_BASE,
                "method": m,
                "rescale": paper_rescale(m),
                "mask_lr": lr,
                "eval_samples": 10 if m == "supermask" else 0,
                **overrides,
            }
        )
        for m in ("aslp", "aslp_soft", "naive_gumbel", "supermask", "edge_popup")
        for lr in ABLATION_MASK_LRS
    ]


def ablation_options(**overrides) -> list[RunConfig]:
    """ASLP: rescale (none / smart / dynamic) × Signed Constant, and augmentation for SR ± SC (CPU-sized)."""
    cells = [dict(rescale=r, signed_constant=sc) for r in (None, "smart", "dynamic") for sc in (False, True)]
    cells += [dict(rescale="smart", signed_constant=sc, augment=True) for sc in (False, True)]
    return [RunConfig(**{**ABLATION_BASE, **c, **overrides}) for c in cells]


# Choosing a CPU budget: learning curves of the paper's headline Conv2 cell (ASLP + SR + SC + DA,
# full CIFAR-10, the authors' protocol) for the paper's mask lr and larger ones, at two budgets.
CPU_BUDGET_STUDY_LRS = (50.0, 300.0, 1000.0, 3000.0)
CPU_BUDGET_STUDY_EPOCHS = (10, 20)


def cpu_budget(**overrides) -> list[RunConfig]:
    """Conv2 ASLP+SR+SC+DA on full CIFAR-10: mask lr 50 / 300 / 1000 / 3000 × 10 and 20 cosine epochs (CPU)."""
    return [
        paper_cell("cifar10", "conv2", "aslp", True, True, True, epochs=e, mask_lr=lr, schedule="cosine", **overrides)
        for e in CPU_BUDGET_STUDY_EPOCHS
        for lr in CPU_BUDGET_STUDY_LRS
    ]


def cpu_budget_baselines(**overrides) -> list[RunConfig]:
    """The baselines on full CIFAR-10, Conv2, 10 epochs (CPU): Supermask (no options) at mask lr 300 / 1000 /
    3000 and Edge-Popup (SC + DA) also at 10000; Supermask with dynamic rescale, whose gradient through the
    kept count (chapter 8) calls for smaller rates, at 10 / 50 / 300 / 1000."""
    cells = [
        ("supermask", False, False, False, CPU_BUDGET_STUDY_LRS[1:]),
        ("edge_popup", False, True, True, (*CPU_BUDGET_STUDY_LRS[1:], 10000.0)),
        ("supermask", True, False, False, (10.0, *CPU_BUDGET_STUDY_LRS[:3])),
    ]
    return [
        paper_cell("cifar10", "conv2", method, wr, sc, da, epochs=10, mask_lr=lr, schedule="cosine", **overrides)
        for method, wr, sc, da, rates in cells
        for lr in rates
    ]


def cpu_budget_aslp_plain(**overrides) -> list[RunConfig]:
    """ASLP without options on full CIFAR-10, Conv2, 10 epochs (CPU), at Supermask's study rates 300 / 1000 /
    3000, then seeds 1 and 2 of both methods at Supermask's chosen rate: the paper's ASLP vs Supermask cell
    compared at equal rates, not only at each method's chosen rate (ASLP's was chosen with every option on)."""
    cell = dict(dataset="cifar10", network="conv2", weight_rescale=False, signed_constant=False, data_augmentation=False)
    budget = dict(epochs=10, schedule="cosine", **overrides)
    rate = CPU_MASK_LR["supermask"]
    return [paper_cell(**cell, method="aslp", mask_lr=lr, **budget) for lr in CPU_BUDGET_STUDY_LRS[1:]] + [
        paper_cell(**cell, method=method, mask_lr=rate, seed=seed, **budget) for seed in (1, 2) for method in ("aslp", "supermask")
    ]


# The CPU budget of the paper-cpu grid, chosen from the cpu-budget study (chapter 9 shows it):
# cosine epochs and, per method, the mask learning rate with the best validation accuracy (Supermask
# with dynamic rescale has a study and a rate of its own: its gradient through the kept count).
CPU_BUDGET = dict(epochs=20, schedule="cosine")
CPU_MASK_LR = {"aslp": 300.0, "supermask": 1000.0, "supermask+DR": 50.0, "edge_popup": 3000.0}


def cpu_rate_key(method: str, rescale: str | None) -> str:
    """The key of ``CPU_MASK_LR`` for a run: Supermask with dynamic rescale has a rate of its own."""
    return f"{method}+DR" if method == "supermask" and rescale == "dynamic" else method


# The paper's two ordering claims rest on these cells: ASLP vs Edge-Popup with SC + DA, and ASLP
# vs Supermask without options (method, weight_rescale, signed_constant, data_augmentation).
HEADLINE_CELLS = (
    ("aslp", True, True, True),
    ("edge_popup", True, True, True),
    ("aslp", False, False, False),
    ("supermask", False, False, False),
)


def paper_cpu_tiers(**overrides) -> dict[str, list[RunConfig]]:
    """The runs of ``paper-cpu`` by priority tier (a to d), each run once.

    a: every Conv2 cell, CIFAR-10 and CIFAR-100, seed 0; b: Conv6's headline cells, seed 0;
    c: seeds 1 and 2 of Conv2's headline cells; d: the remaining Conv4 and Conv6 cells, seed 0.
    """

    def cell(dataset, network, method, weight_rescale, signed_constant, data_augmentation, seed=0):
        config = paper_cell(dataset, network, method, weight_rescale, signed_constant, data_augmentation)
        rate = CPU_MASK_LR[cpu_rate_key(method, config.rescale)]
        budget = {**CPU_BUDGET, "mask_lr": rate, "seed": seed, **overrides}
        return paper_cell(dataset, network, method, weight_rescale, signed_constant, data_augmentation, **budget)

    def cells(dataset, networks):
        return [cell(**d) for d in paper_cells(dataset, networks)]

    tiers = {
        "a": cells("cifar10", ("conv2",)) + cells("cifar100", ("conv2",)),
        "b": [cell("cifar10", "conv6", *h) for h in HEADLINE_CELLS],
        "c": [cell("cifar10", "conv2", *h, seed=s) for s in (1, 2) for h in HEADLINE_CELLS],
        "d": cells("cifar10", ("conv6", "conv4")) + cells("cifar100", ("conv4", "conv6")),
    }
    seen: set[RunConfig] = set()
    for name, configs in tiers.items():
        tiers[name] = [c for c in _unique(configs) if c not in seen]
        seen.update(tiers[name])
    return tiers


def paper_cpu(**overrides) -> list[RunConfig]:
    """The paper's cells at the CPU budget (full data, the authors' protocol), tier a first, then b, c, d."""
    return [c for configs in paper_cpu_tiers(**overrides).values() for c in configs]


# The CPU recipe study: how to optimise the mask logits so that the CPU's runs converge. The Conv2
# headline cell (ASLP + SR + SC + DA, the authors' protocol, full CIFAR-10), 30 epochs, seed 0,
# a constant rate unless the schedule is the lever; in priority order. Chapter 9 shows it.
RECIPE_EPOCHS = 30
RECIPE_LEVERS_ASLP = (
    dict(mask_lr=300.0),
    dict(mask_lr=300.0, layer_lr="weight_std"),
    dict(mask_lr=3000.0, layer_lr="weight_std"),
    dict(mask_lr=0.1, mask_optimizer="adam"),
    dict(mask_lr=300.0, schedule="tail"),
    dict(mask_lr=100.0),
    dict(mask_lr=1000.0, layer_lr="weight_std"),
    dict(mask_lr=0.03, mask_optimizer="adam"),
    dict(mask_lr=1000.0),
)


def cpu_recipe_aslp(**overrides) -> list[RunConfig]:
    """The recipe screen of ASLP + SR + SC + DA on Conv2 (full CIFAR-10, 30 epochs, CPU): optimiser, per-layer
    rate, rate and schedule of the mask logits, one lever set per run (``RECIPE_LEVERS_ASLP``)."""
    budget = dict(epochs=RECIPE_EPOCHS, schedule="constant")
    return [paper_cell("cifar10", "conv2", "aslp", True, True, True, **{**budget, **lever, **overrides}) for lever in RECIPE_LEVERS_ASLP]


def precision_check(**overrides) -> list[RunConfig]:
    """bf16 autocast + channels_last vs float32: the same Conv2 cell for 3 full-data epochs, seeds 0-2 (CPU)."""
    return [
        paper_cell(
            "cifar10", "conv2", "aslp", True, True, True, epochs=3, mask_lr=1000.0, bf16=fast, channels_last=fast, seed=seed, **overrides
        )
        for seed in (0, 1, 2)
        for fast in (True, False)
    ]


def ablations(**overrides) -> list[RunConfig]:
    """Every CPU-sized ablation of the book, each distinct config once."""
    grids = [GRIDS[name](**overrides) for name in GRIDS if name.startswith("ablation-")]
    return list(dict.fromkeys(c for g in grids for c in g))


GRIDS: dict[str, Callable[..., list[RunConfig]]] = {
    "paper-cifar10": paper_cifar10,
    "paper-cifar100": paper_cifar100,
    "authors-cifar10": authors_cifar10,
    "authors-cifar100": authors_cifar100,
    "cpu-budget": cpu_budget,
    "cpu-budget-baselines": cpu_budget_baselines,
    "cpu-budget-aslp-plain": cpu_budget_aslp_plain,
    "precision-check": precision_check,
    "paper-cpu": paper_cpu,
    "cpu-recipe-aslp": cpu_recipe_aslp,
    "ablation-tau": ablation("tau", [0.5, 1.0, 2.0, 4.0]),
    "ablation-init": ablation("logit_init", [-2.0, 0.0, 2.0]),
    "ablation-mask-lr": ablation("mask_lr", list(ABLATION_MASK_LRS)),
    "ablation-sampler": ablation_sampler,
    "ablation-options": ablation_options,
}
GRIDS["ablations"] = ablations
"""Named grids; each takes keyword overrides applied to every config (e.g. ``epochs=50``)."""


def grid(name: str, seeds: list[int] | tuple[int, ...] | None = None, **overrides) -> list[RunConfig]:
    """The configs of grid ``name``, once per seed, with ``overrides`` applied to each.

    Overriding a field the grid varies (``tau`` in ``ablation-tau``) is refused.
    ``seeds=None`` keeps the grid's own seeds (0, unless the grid sets them, as ``paper-cpu``'s
    tiers do).
    """
    check_choice("grid", name, tuple(GRIDS))
    own = GRIDS[name]()
    varied = sorted(k for k in overrides if len({getattr(c, k) for c in own}) > 1)
    if varied:
        values = {k: sorted({getattr(c, k) for c in own}, key=repr) for k in varied}
        raise ValueError(
            f"grid {name} varies {', '.join(f'{k} over {v}' for k, v in values.items())}; overriding "
            f"{', '.join(varied)} would collapse those runs into one. Drop the override, or build the configs yourself"
        )
    configs = GRIDS[name](**overrides)
    return configs if seeds is None else [replace(c, seed=s) for s in dict.fromkeys(seeds) for c in configs]  # each seed once
