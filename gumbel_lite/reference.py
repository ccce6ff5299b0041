"""The reference run: one small Conv2 subnetwork, trained once per seed, stored, and loaded by the book.

Chapters 2, 6 and 10 analyse the same subnetwork: ASLP masks with Smart Rescale on the random
weights of Conv2, CIFAR-10 reduced to 200 training images per class, 6 epochs (:data:`CONFIG`).
Training takes about 30 s per seed on a CPU; it is done once per seed (:data:`SEEDS`) by
``python -m gumbel_lite reference`` and stored under ``data/reference/``; the chapters load it
with :func:`load_reference` (or retrain it with :func:`train_reference`, their ``RUN = "live"``).

What is stored per seed (a ``torch.save`` file of plain tensors and numbers, about 5 MB):

* the final mask logits m̂, so that sampled masks can be drawn: in float16, except for the
  layers of more than a million weights (fc1: 4.2 M of Conv2's 4.3 M) in 8-bit floating point
  (e4m3: 3 mantissa bits, p_sel = σ(m̂) within 0.013 of its float32 value), kept as raw bytes so
  that every torch this package supports loads them with ``weights_only=True``;
* the deterministic mask bit-packed, so that the mask is exact (a rounded logit near 0 could
  otherwise change side);
* the Smart Rescale scales, the training history, and per epoch and layer: density, flips since
  the previous epoch, and a histogram of p_sel = σ(m̂) (the recorder of chapter 10);
* provenance (device, versions, commit, date) and the sha256 of the initial weights.

The random weights themselves are not stored: they are redrawn from the seed
(``seed_everything(seed)`` then ``models.conv2()``). PyTorch does not promise the same random
stream across versions; :func:`load_reference` compares the redrawn weights with the stored
sha256 and, should they differ, says so and how to retrain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import models
from .checks import check_choice, check_number
from .export import _pack, _unpack, save_atomic
from .masking import deterministic_masks, mask_model, masked_layers
from .runner import provenance
from .train import History, seed_everything, train

FORMAT = 1
RUNS = ("stored", "live")
SEEDS = (0, 1, 2)
LOW_PRECISION_ABOVE = 1_000_000  # layers larger than this store their logits in float8 (e4m3)
HIST_BINS = 50  # histogram bins of p_sel on [0, 1]
CONFIG = {
    "network": "conv2",
    "dataset": "cifar10",
    "method": "aslp",
    "rescale": "smart",
    "per_class": 200,  # training images per class, 10 % of them held out for validation
    "test_per_class": 100,
    "data_seed": 0,  # the same images and split for every seed
    "batch_size": 64,
    "epochs": 6,
    "mask_lr": 2000.0,  # far above the paper's 50: a short run (chapter 2)
    "schedule": "cosine",
}
SMOKE = {"per_class": 20, "test_per_class": 10, "epochs": 2}


def default_folder() -> Path:
    """``data/reference`` of this checkout, else of the book's parent folder (``../data/reference``)."""
    here = Path(__file__).resolve().parents[1] / "data" / "reference"
    return here if here.is_dir() else Path("..") / "data" / "reference"


def file_name(seed: int) -> str:
    return f"conv2-aslp-sr-seed{seed}.pt"


@dataclass
class ReferenceRun:
    """One seed of the reference run, trained here or loaded from ``data/reference``.

    ``model``: the masked Conv2 in the state of its best validation epoch, in eval mode.
    ``epochs``: one record per epoch (0 = before training) and layer, with ``layer`` (readable
    name), ``density``, ``flips`` (fraction of the layer's mask changed since the previous
    epoch) and ``hist`` (counts of p_sel in :data:`HIST_BINS` bins on [0, 1]).
    """

    seed: int
    model: nn.Module
    history: History
    epochs: list[dict]
    provenance: dict
    config: dict = field(default_factory=lambda: dict(CONFIG))
    source: str = "live"

    @property
    def layers(self) -> dict[str, str]:
        """Readable layer names by module name (``"0"`` → ``"conv1"``, …)."""
        return models.layer_names(self.model)


def reference_data(device: str | torch.device = "cpu", smoke: bool = False, download: bool = True, root=None):
    """The reference run's data (:class:`~gumbel_lite.CifarData`); ``smoke``: a tiny subset for tests."""
    from .data import CifarData

    c = CONFIG | (SMOKE if smoke else {})
    return CifarData(
        c["dataset"],
        root=root,
        device=device,
        batch_size=c["batch_size"],
        per_class=c["per_class"],
        test_per_class=c["test_per_class"],
        seed=c["data_seed"],
        download=download,
    )


def random_network(seed: int) -> nn.Module:
    """The untrained Conv2 of ``seed``, drawn on the CPU (its weights are never trained)."""
    seed_everything(seed)
    return models.build(CONFIG["network"], num_classes=10)


def weights_sha256(model: nn.Module) -> str:
    """sha256 of the Conv/Linear weights of ``model`` (float32, in module order)."""
    digest = hashlib.sha256()
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            w = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
            digest.update(name.encode())
            digest.update(w.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _layer_records(model: nn.Module, epoch: int, previous: dict | None) -> tuple[list[dict], dict]:
    names = models.layer_names(model)
    masks = {k: v.cpu() for k, v in deterministic_masks(model).items()}
    bins = np.linspace(0, 1, HIST_BINS + 1)
    rows = []
    for name, _, p in masked_layers(model):
        p_sel = torch.sigmoid(p.mask_logits.detach().float()).flatten().cpu().numpy()
        mask = masks[name]
        flips = float((mask != previous[name]).float().mean()) if previous else 0.0
        rows.append(
            {
                "epoch": epoch,
                "layer": names[name],
                "density": float(mask.float().mean()),
                "flips": flips,
                "hist": np.histogram(p_sel, bins)[0].tolist(),
            }
        )
    return rows, masks


def train_reference(
    seed: int = 0, data=None, device: str | torch.device | None = None, smoke: bool = False, progress: bool = False
) -> ReferenceRun:
    """Train one seed of the reference run (:data:`CONFIG`) and record it epoch by epoch.

    ``data``: a :class:`~gumbel_lite.CifarData` (default: :func:`reference_data` on ``device``).
    ``smoke``: 2 epochs (with ``data`` from ``reference_data(smoke=True)``) to test the code.
    """
    seed = check_number("seed", seed, integer=True, minimum=0)
    if data is None:
        data = reference_data(device or "cpu", smoke=smoke)
    c = CONFIG | (SMOKE if smoke else {})
    model = mask_model(random_network(seed), method=c["method"], rescale=c["rescale"])
    data.generator.manual_seed(c["data_seed"] + seed)  # batch order and augmentation noise per seed
    epochs, previous = _layer_records(model, 0, None)

    def record(r: dict) -> None:
        nonlocal previous
        rows, previous = _layer_records(model, r["epoch"] + 1, previous)
        epochs.extend(rows)

    history = train(
        model,
        data,
        epochs=c["epochs"],
        mask_lr=c["mask_lr"],
        schedule=c["schedule"],
        progress=progress,
        on_epoch=record,
    )
    meta = provenance(data.device) | {"seed": seed, "smoke": smoke, "weights_sha256": weights_sha256(model)}
    return ReferenceRun(seed, model, history, epochs, meta, dict(c), "live")


def _encode_logits(logits: torch.Tensor) -> dict:
    """float16, or for large layers float8 (e4m3) stored as its bytes (uint8 loads on every torch)."""
    if logits.numel() > LOW_PRECISION_ABOVE:
        return {"logits": logits.to(torch.float8_e4m3fn).view(torch.uint8), "encoding": "float8_e4m3fn"}
    return {"logits": logits.half(), "encoding": "float16"}


def _decode_logits(entry: dict) -> torch.Tensor:
    logits = entry["logits"]
    if entry.get("encoding") == "float8_e4m3fn":
        logits = logits.view(torch.float8_e4m3fn)
    return logits.float()


def save_reference(run: ReferenceRun, folder: str | Path | None = None) -> Path:
    """Write ``run`` atomically to ``folder/conv2-aslp-sr-seed{seed}.pt``; returns the path."""
    if run.provenance.get("smoke"):
        raise ValueError("a smoke run is a code check, not a reference run: train with smoke=False to store it")
    folder = Path(folder) if folder is not None else default_folder()
    folder.mkdir(parents=True, exist_ok=True)
    masks = deterministic_masks(run.model)
    layers = {}
    for name, _, p in masked_layers(run.model):
        layers[name] = {
            **_encode_logits(p.mask_logits.detach().cpu()),
            "mask": _pack(masks[name]),
            "scale": float(p.scale.detach()) if p.scale is not None else None,
        }
    plain = {  # plain numbers and strings only: loadable with weights_only=True
        "config": run.config,
        "provenance": run.provenance,
        "history": run.history.to_dict(),
        "epochs": run.epochs,
    }
    payload = {"format": FORMAT, "seed": run.seed, **json.loads(json.dumps(plain, default=str)), "layers": layers}
    path = folder / file_name(run.seed)
    save_atomic(payload, path)
    return path


def load_reference(seed: int = 0, folder: str | Path | None = None, device: str | torch.device = "cpu") -> ReferenceRun:
    """Load one stored seed of the reference run (see :func:`train_reference` to retrain it).

    The random weights are redrawn from the seed and checked against the stored sha256.
    """
    folder = Path(folder) if folder is not None else default_folder()
    path = folder / file_name(seed)
    if not path.is_file():
        stored = sorted(p.name for p in folder.glob("conv2-aslp-sr-seed*.pt")) if folder.is_dir() else []
        raise FileNotFoundError(
            f"no reference run for seed {seed} in {folder} (stored: {', '.join(stored) or 'none'}). "
            f"Fix: choose a stored seed, or retrain with train_reference({seed}) (RUN = 'live' in the book)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - one clear message for a truncated or foreign file
        raise ValueError(f"{path} is not a readable reference run ({type(e).__name__}: {e})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown reference format (expected {FORMAT})")
    c = payload["config"]
    model = mask_model(random_network(seed), method=c["method"], rescale=c["rescale"])
    expected = payload["provenance"]["weights_sha256"]
    if weights_sha256(model) != expected:
        raise ValueError(
            f"the random weights drawn for seed {seed} by torch {torch.__version__} differ from those of the "
            f"stored run (torch {payload['provenance']['torch']}): PyTorch does not promise the same random "
            "stream across versions. Fix: retrain with train_reference(seed) (RUN = 'live' in the book)"
        )
    with torch.no_grad():
        for name, _, p in masked_layers(model):
            entry = payload["layers"][name]
            n = p.mask_logits.numel()
            mask = _unpack(entry["mask"], n).view_as(p.mask_logits)
            logits = _decode_logits(entry)
            logits = torch.where(mask, logits.clamp_min(0.0), logits.clamp_max(-1e-7))  # the stored side of 0
            p.mask_logits.copy_(logits)
            if p.scale is not None:
                p.scale.fill_(entry["scale"])
    history = History(**payload["history"])
    model.to(device).eval()
    return ReferenceRun(seed, model, history, payload["epochs"], payload["provenance"], c, str(path))


def reference_run(seed: int = 0, run: str = "stored", data=None, smoke: bool = False) -> ReferenceRun:
    """The book's entry point: seed ``seed`` of the reference run, ``"stored"`` (loaded) or ``"live"`` (retrained).

    ``data``: the :func:`reference_data` the chapter evaluates on (its device is used; default:
    built on the CPU). ``smoke`` (tests): a live run trains 2 epochs on ``data``.
    """
    check_choice("run", run, RUNS)
    if run == "live":
        return train_reference(seed, data, smoke=smoke)
    return load_reference(seed, device=data.device if data is not None else "cpu")
