"""The rescaling trainer: three parameter groups, a plain PyTorch loop.

Groups (the paper's defaults): mask logits m̂ — SGD lr 50, momentum 0.9, no weight decay;
Smart Rescale scales s_l — SGD lr 1e-3; weights — only for the ``"dense"`` baseline. The mask
logits may instead use Adam (``mask_optimizer="adam"``, a second optimizer: the scales keep
their SGD), and a rate per layer (``layer_lr="weight_std"``). Early stopping watches the
accuracy on a seeded validation split, evaluated without augmentation and with the
deterministic mask; the best epoch's state is restored and tested at the end. Every epoch
records, per masked layer, how far the logits have travelled (see :func:`layer_diagnostics`).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_choice, check_number, check_switch
from .masking import density, deterministic_masks, frozen_weight, is_masked, mask_mode, mask_statistics, masked_layers, parameter_groups

SCHEDULES = ("constant", "cosine", "tail")
MASK_OPTIMIZERS = ("sgd", "adam")
LAYER_RATES = ("global", "weight_std")
CHECKPOINT_FORMAT = 3
SATURATED = 4.0
"""|m̂| above which a logit counts as saturated: p_sel = σ(4) ≈ 0.982 (or below 0.018)."""


@dataclass
class History:
    """Per-epoch records and the final result of :func:`train`."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val_accuracy: float = float("nan")
    test_accuracy: float = float("nan")
    sampled_test_accuracy: list[float] = field(default_factory=list)
    final_density: float = float("nan")
    stopped_early: bool = False
    wall_time: float = 0.0
    bf16: bool = False
    channels_last: bool = False
    precision_reason: str = ""

    def column(self, key: str) -> list:
        """One per-epoch quantity as a list, e.g. ``history.column("val_accuracy")``."""
        return [e[key] for e in self.epochs]

    def to_dict(self) -> dict:
        return asdict(self)


def default_device() -> torch.device:
    """CUDA, then Apple MPS, then CPU; prints a hint when only the CPU is available."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    print("No GPU found: running on the CPU. On Colab: Runtime > Change runtime type > GPU.")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (all devices)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def device_name(device: torch.device | str) -> str:
    """A readable name of the device: the GPU model, "Apple MPS", or the CPU and its thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively: AVX-512 BF16 / AMX, or the Arm BF16 extension."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            return True
    try:  # Arm CPUs report the bf16 extension in their feature flags
        with open("/proc/cpuinfo") as f:
            return any(line.split(":")[0].strip() in ("Features", "flags") and " bf16" in line for line in f)
    except OSError:
        return False


def precision_for(device_type: str, capability: tuple[int, int] | None = None, cpu_bf16: bool = False) -> tuple[bool, bool, str]:
    """What ``"auto"`` picks on a device: ``(bf16, channels_last, reason)``. A pure function of the facts.

    CUDA: bf16 autocast and channels_last from compute capability 8.0 (Ampere) on, where cuDNN
    runs bf16 convolutions on tensor cores; below (a T4 is 7.5) bf16 would be emulated, slower
    than float32, so float32 and the default memory format. CPU: both where the CPU has native
    bf16 (``cpu_bf16``). MPS and anything else: float32. channels_last only ever goes with bf16:
    without tensor-core precision it does not pay.
    """
    if device_type == "cuda":
        if capability is not None and tuple(capability) >= (8, 0):
            return True, True, f"CUDA compute capability {capability[0]}.{capability[1]} (8.0 or later): native bf16 tensor cores"
        shown = f"{capability[0]}.{capability[1]}" if capability is not None else "unknown"
        return False, False, f"CUDA compute capability {shown} (below 8.0): bf16 would be emulated, so float32"
    if device_type == "cpu":
        if cpu_bf16:
            return True, True, "CPU with native bf16 (AVX-512 BF16, AMX or Arm BF16)"
        return False, False, "CPU without native bf16: float32"
    if device_type == "mps":
        return False, False, "Apple MPS: float32 (bf16 autocast there needs torch 2.5 or later)"
    return False, False, f"device type {device_type}: float32"


def auto_precision(device: torch.device | str) -> tuple[bool, bool, str]:
    """:func:`precision_for` with the facts of ``device`` (its CUDA capability, or the CPU's bf16 support)."""
    device = torch.device(device)
    if device.type == "cuda":
        return precision_for("cuda", tuple(torch.cuda.get_device_capability(device)))
    if device.type == "cpu":
        return precision_for("cpu", cpu_bf16=cpu_has_bf16())
    return precision_for(device.type)


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes in bfloat16 natively: CUDA from compute capability 8.0, or a CPU with native bf16."""
    return auto_precision(device)[0]


def resolve_fast_path(device: torch.device | str, bf16: bool | str = "auto", channels_last: bool | str = "auto") -> tuple[bool, bool]:
    """Resolve ``"auto"`` for bf16 autocast and channels_last with :func:`auto_precision`.

    Explicit ``True`` / ``False`` win. Returns ``(bf16, channels_last)`` as booleans.
    """
    return _resolve(device, bf16, channels_last)[:2]


def _resolve(device, bf16, channels_last) -> tuple[bool, bool, str]:
    check_switch("bf16", bf16)
    check_switch("channels_last", channels_last)
    if bf16 != "auto" and channels_last != "auto":
        return bool(bf16), bool(channels_last), "set by the caller"
    auto_bf16, auto_cl, reason = auto_precision(device)
    chosen = (auto_bf16 if bf16 == "auto" else bool(bf16)), (auto_cl if channels_last == "auto" else bool(channels_last))
    return (*chosen, reason if (bf16, channels_last) == ("auto", "auto") else f"{reason}; partly set by the caller")


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (its own index for ``cuda:N``; MPS too), e.g. before reading a clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on ``device`` when ``enabled``; otherwise no autocast at all (MPS on torch < 2.5 has none)."""
    return torch.autocast(device.type, torch.bfloat16) if enabled else contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, data, split: str = "test", mask: str = "deterministic", bf16: bool = False) -> dict[str, float]:
    """Loss and accuracy on ``split`` with the ``"deterministic"`` or a ``"sample"``-d mask."""
    was_training = model.training
    model.eval()
    device = data.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    with mask_mode(model, mask), autocast(device, bf16):
        for images, labels in data.eval_batches(split):
            logits = model(images).float()
            loss_sum += F.cross_entropy(logits, labels, reduction="sum")
            correct += (logits.argmax(1) == labels).sum()
            count += len(labels)
    model.train(was_training)
    if count == 0:
        return {"loss": float("nan"), "accuracy": float("nan")}
    return {"loss": float(loss_sum) / count, "accuracy": float(correct) / count}


class _Quiet:
    """Stands in for a tqdm bar when progress is off (no tqdm import, no widget warnings)."""

    def __init__(self, iterable) -> None:
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def set_postfix(self, **kwargs) -> None:
        pass


def layer_rates(model: nn.Module, rule: str = "global") -> dict[str, float]:
    """The factor on ``mask_lr`` of each masked layer under ``rule``.

    ``"global"``: 1 everywhere (one rate). ``"weight_std"``: std(w_big) / std(w_l), where the
    layer with the most weights keeps the base rate. The logit gradient of a layer scales with
    its weights (∂L/∂m̂ = w ∂L/∂(w m) through the straight-through sample), so this rule evens
    out the layers' steps; for Kaiming weights it is √(fan_in_l / fan_in_big), which slows the
    small layers of few inputs (conv1 of Conv2: 1/25) instead of speeding up the large one.
    """
    check_choice("layer_lr", rule, LAYER_RATES)
    layers = list(masked_layers(model))
    if rule == "global":
        return {name: 1.0 for name, _, _ in layers}
    stds = {name: float(frozen_weight(layer).float().std()) for name, layer, _ in layers}
    big = max(layers, key=lambda item: item[2].mask_logits.numel())[0]
    return {name: stds[big] / std if std > 0 else 1.0 for name, std in stds.items()}


def make_optimizers(
    model: nn.Module,
    mask_lr: float,
    scale_lr: float,
    weight_lr: float,
    momentum: float,
    weight_decay: float,
    mask_optimizer: str = "sgd",
    layer_lr: str = "global",
) -> list[torch.optim.Optimizer]:
    """The optimizers of a run: SGD with a group per role, plus Adam for the mask logits if asked.

    Groups are named (``mask_logits`` or ``mask_logits:<layer>`` with per-layer rates,
    ``scales``, ``weights``), so the recorded rates say which is which. The scales and weights
    always stay on SGD (``scale_lr``, ``momentum``): Adam would change how the scales move too.
    """
    check_choice("mask_optimizer", mask_optimizer, MASK_OPTIMIZERS)
    groups = parameter_groups(model)
    rates = layer_rates(model, layer_lr)
    if layer_lr == "global":
        logits = [{"params": groups["mask_logits"], "lr": mask_lr, "name": "mask_logits"}] if groups["mask_logits"] else []
    else:
        logits = [{"params": [p.mask_logits], "lr": mask_lr * rates[n], "name": f"mask_logits:{n}"} for n, _, p in masked_layers(model)]
    others = [
        {"params": groups["scales"], "lr": scale_lr, "weight_decay": 0.0, "name": "scales"},
        {"params": groups["weights"], "lr": weight_lr, "weight_decay": weight_decay, "name": "weights"},
    ]
    if mask_optimizer == "sgd":
        sgd = [{**g, "weight_decay": 0.0} for g in logits] + others
        adam = []
    else:
        sgd, adam = others, logits
    sgd = [g for g in sgd if g["params"]]
    if not sgd and not adam:
        raise ValueError("model has no trainable parameter")
    optimizers = [torch.optim.SGD(sgd, momentum=momentum)] if sgd else []
    return optimizers + ([torch.optim.Adam(adam)] if adam else [])


def lr_factor(schedule: str, epochs: int, decay_fraction: float = 0.25) -> Callable[[int], float]:
    """The multiplier of every rate in epoch ``e``: ``constant`` 1; ``cosine`` from 1 to 0 over the run;
    ``tail`` 1, then a cosine to 0 over the last ``decay_fraction`` of the epochs."""
    check_choice("schedule", schedule, SCHEDULES)
    if schedule == "constant":
        return lambda e: 1.0
    if schedule == "cosine":
        return lambda e: 0.5 * (1 + math.cos(math.pi * e / epochs))
    tail = max(1, round(decay_fraction * epochs))
    start = epochs - tail
    return lambda e: 1.0 if e < start else 0.5 * (1 + math.cos(math.pi * (e - start) / tail))


def _atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file of a unique name next to ``path``, then rename it over ``path``."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} cannot be written ({e.strerror or e}); the previous one, if any, is kept") from e
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, (OSError, RuntimeError)):  # torch.save reports a full disk as a RuntimeError
            raise CheckpointError(
                f"checkpoint {path} could not be written ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'}): "
                "is the disk full? The previous checkpoint, if any, is kept; free some space and run the same command again"
            ) from e
        raise


def train_one_epoch(
    model: nn.Module, data, optimizers: list[torch.optim.Optimizer], bf16: bool, channels_last: bool
) -> tuple[float, float, dict[str, float]]:
    """One pass over the training batches.

    Returns the mean training loss and accuracy, and per masked layer the RMS of the logit
    gradient ∂L/∂m̂ over the epoch's steps and weights (summed on the device, one sync at the end).
    """
    device = data.device
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = steps = 0
    layers = [(name, p.mask_logits) for name, _, p in masked_layers(model)]
    grad_sq = torch.zeros(len(layers), device=device)
    for images, labels in data.train_batches():
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, bf16):
            logits = model(images)
            loss = F.cross_entropy(logits.float(), labels)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if layers:
            with torch.no_grad():
                grad_sq += torch.stack([m.grad.pow(2).sum() if m.grad is not None else m.new_zeros(()) for _, m in layers])
        for optimizer in optimizers:
            optimizer.step()
        loss_sum += loss.detach() * len(labels)
        correct += (logits.argmax(1) == labels).sum()
        count += len(labels)
        steps += 1
    rms = {name: math.sqrt(float(sq) / (max(steps, 1) * m.numel())) for (name, m), sq in zip(layers, grad_sq.tolist())}
    return float(loss_sum) / count, float(correct) / count, rms


def evaluate_epoch(model: nn.Module, data, bf16: bool, track_test: bool) -> dict[str, float]:
    """Validation loss and accuracy (NaN without a validation split), and the monitored test accuracy."""
    nan = float("nan")
    val = evaluate(model, data, "val", bf16=bf16) if len(data.splits["val"]) else {"accuracy": nan, "loss": nan}
    return {
        "val_loss": val["loss"],
        "val_accuracy": val["accuracy"],
        # monitored for time-to-accuracy curves only; model selection uses validation
        "test_accuracy": evaluate(model, data, "test", bf16=bf16)["accuracy"] if track_test else nan,
    }


@torch.no_grad()
def layer_diagnostics(
    model: nn.Module, masks: dict[str, torch.Tensor], previous: dict[str, torch.Tensor], densities: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Per masked layer: how far its logits have travelled and whether its mask still moves.

    ``density`` (of the deterministic mask, from ``densities``), ``mean_abs_logit`` (mean |m̂|),
    ``saturated`` (share of |m̂| > :data:`SATURATED`), ``flip_rate`` (share of its mask entries
    changed since ``previous``).
    """
    out = {}
    for name, _, p in masked_layers(model):
        m = p.mask_logits
        out[name] = {
            "density": densities[name],
            "mean_abs_logit": float(m.abs().mean()),
            "saturated": float((m.abs() > SATURATED).float().mean()),
            "flip_rate": float((masks[name] != previous[name]).float().mean()),
        }
    return out


def mask_record(model: nn.Module, masks: dict[str, torch.Tensor], previous: dict[str, torch.Tensor]) -> dict:
    """The epoch's mask quantities: density (overall and per layer), flip rate since ``previous``,
    statistics of p_sel, and :func:`layer_diagnostics` under ``layers``."""
    flips = sum(int((masks[k] != previous[k]).sum()) for k in masks)
    d = density(model)
    layers = layer_diagnostics(model, masks, previous, d.per_layer)
    return dict(density=d.overall, density_per_layer=d.per_layer, flip_rate=flips / d.total, layers=layers, **mask_statistics(model))


def param_groups(optimizers: list[torch.optim.Optimizer]) -> list[dict]:
    """The named parameter groups of all ``optimizers``, in order."""
    return [g for optimizer in optimizers for g in optimizer.param_groups]


def check_finite(optimizers: list[torch.optim.Optimizer], train_loss: float, epoch: int, checkpoint: Path | None) -> None:
    """Raise ``FloatingPointError`` if the loss or any parameter is not finite, naming the parameter group(s) at fault."""
    bad = [
        f"{g['name']} (lr {g['lr']:g})"
        for g in param_groups(optimizers)
        if any(not bool(torch.isfinite(p).all()) for p in g["params"])
    ]
    if math.isfinite(train_loss) and not bad:
        return
    kept = (
        f"the last saved epoch is kept in the checkpoint {checkpoint}"
        if checkpoint is not None
        else "no checkpoint holds an earlier epoch"
    )
    if bad:
        cause = f"non-finite parameters in group(s) {', '.join(bad)}: try a smaller learning rate for them"
    else:
        cause = "every parameter is still finite, so the loss itself overflowed: try smaller learning rates, or bf16=False"
    what = f"training loss became {train_loss}" if not math.isfinite(train_loss) else "parameters became non-finite"
    raise FloatingPointError(f"{what} in epoch {epoch}; {cause}; {kept}.")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read; the message names the file and the fix."""


def check_owner(path: Path, state: dict, owner: dict, epochs: int) -> None:
    """Refuse a checkpoint of a newer format, of another run or hyperparameters, or past ``epochs``.

    ``epochs`` and ``patience`` may differ: training a run for longer continues it.
    """
    fix = f"Fix: delete {path} to train this run again from its first epoch, or give this run another checkpoint path."
    fmt = state.get("format", 1)
    if not isinstance(fmt, int) or isinstance(fmt, bool) or not 1 <= fmt <= CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {fmt!r}; this gumbel-lite reads formats 1 to {CHECKPOINT_FORMAT}. {fix}")
    saved = state.get("owner") or {}
    if saved.get("run_id") is not None and owner.get("run_id") is not None and saved["run_id"] != owner["run_id"]:
        raise CheckpointError(f"checkpoint {path} belongs to run {saved['run_id']}, not to run {owner['run_id']}. {fix}")
    theirs, ours = saved.get("hyperparameters") or {}, owner["hyperparameters"]
    # more epochs (or another patience) continue a finished run: the rest must match
    differ = [k for k in ours if k in theirs and k not in ("epochs", "patience") and theirs[k] != ours[k]]
    if differ:
        said = ", ".join(f"{k}={theirs[k]!r} (this run: {ours[k]!r})" for k in differ)
        raise CheckpointError(f"checkpoint {path} was made with {said}. {fix}")
    epoch = state.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not -1 <= epoch < epochs:
        raise CheckpointError(f"checkpoint {path} claims epoch {epoch!r}, but this run has epochs 0 to {epochs - 1}. {fix}")


def rng_states(device: torch.device, data) -> dict:
    """The random states a resumed run needs: the CPU's, the data's, and the run's own GPU's (``cuda:N`` or MPS)."""
    return {
        "rng_cpu": torch.get_rng_state(),
        "rng_data": data.generator.get_state(),
        "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "rng_mps": torch.mps.get_rng_state() if device.type == "mps" else None,
    }


def restore_rng(state: dict, device: torch.device, data) -> None:
    """Set the states saved by :func:`rng_states` (read on the CPU) back, each on its own device."""
    torch.set_rng_state(state["rng_cpu"].cpu())
    data.generator.set_state(state["rng_data"].cpu())
    if device.type == "cuda" and state.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(state["rng_cuda"].cpu(), device)
    if device.type == "mps" and state.get("rng_mps") is not None:
        torch.mps.set_rng_state(state["rng_mps"].cpu())


def save_checkpoint(
    path: Path, model, optimizers, schedulers, history: History, best_state, epoch: int, data, device, owner: dict | None = None
) -> None:
    """Everything needed to resume after ``epoch``, in plain types only (loadable with ``weights_only=True``).

    ``owner`` (the run id and training hyperparameters) lets a resume refuse another run's checkpoint.
    """
    _atomic_save(
        {
            "format": CHECKPOINT_FORMAT,
            "model": model.state_dict(),
            "optimizers": [o.state_dict() for o in optimizers],
            "schedulers": [s.state_dict() for s in schedulers],
            "history": history.to_dict(),
            "best_state": best_state,
            "epoch": epoch,
            "owner": owner or {},
            **rng_states(device, data),
        },
        path,
    )


def load_checkpoint(path: Path, device=None) -> dict:
    """Read a checkpoint with ``weights_only=True`` (no code runs from the file); ``history`` becomes a :class:`History`.

    Everything is read onto the CPU, whatever ``device`` the run uses (kept for callers; unused):
    ``load_state_dict`` moves tensors to where the model and optimizers live, and the random
    states must stay CPU tensors for :func:`restore_rng`.

    Checkpoints of earlier formats are read too: format 1 pickled a ``History`` (the one class
    they may name); formats 1 and 2 hold one ``optimizer`` and one ``scheduler``, returned as
    lists of one. Any other failure raises :class:`CheckpointError` naming the file.
    """
    try:
        with torch.serialization.safe_globals([History]):
            state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and {"optimizer", "scheduler"} <= set(state):
            state["optimizers"], state["schedulers"] = [state.pop("optimizer")], [state.pop("scheduler")]
        if not isinstance(state, dict) or not {"model", "optimizers", "schedulers", "history", "epoch"} <= set(state):
            raise ValueError("not a training checkpoint")
        history = state["history"]
        state["history"] = history if isinstance(history, History) else History(**history)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint gets the same advice
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'}). "
            f"Fix: delete {path} to train this run again from its first epoch."
        ) from e
    return state


def train(
    model: nn.Module,
    data,
    epochs: int = 100,
    mask_lr: float = 50.0,
    scale_lr: float = 1e-3,
    weight_lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    schedule: str = "constant",
    patience: int | None = None,
    mask_optimizer: str = "sgd",
    layer_lr: str = "global",
    decay_fraction: float = 0.25,
    checkpoint: str | Path | None = None,
    checkpoint_every: float = 60.0,
    run_id: str | None = None,
    bf16: bool | str = "auto",
    channels_last: bool | str = "auto",
    eval_samples: int = 0,
    track_test: bool = True,
    progress: bool | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> History:
    """Train ``model`` (masked with :func:`mask_model`, or dense) on ``data`` (:class:`CifarData`).

    ``schedule``: ``"constant"``, ``"cosine"`` (per epoch, to 0 at ``epochs``) or ``"tail"``
    (constant, then a cosine to 0 over the last ``decay_fraction`` of the epochs). ``patience``:
    stop after that many epochs without a better validation accuracy (``None``: never).
    ``mask_optimizer``: ``"sgd"`` (``momentum``) or ``"adam"`` for the mask logits, at
    ``mask_lr``; ``layer_lr``: ``"global"`` or ``"weight_std"`` (see :func:`layer_rates`).
    ``checkpoint``: a file written atomically after the first epoch, then after each epoch that
    ends ``checkpoint_every`` seconds or more after the last save, and after the last epoch (0:
    every epoch); if it exists, training resumes from it. Saving Conv2's ~85 MB costs a share of
    a GPU epoch of a second or two, so a GPU run saves about once a minute, not every epoch.
    A checkpoint records ``run_id`` and the training hyperparameters above; resuming from one
    made with others (or by a newer format, or past this run's last epoch) is refused; more
    ``epochs`` continue it.
    ``eval_samples`` K > 0 also reports the test accuracy of K sampled masks. ``track_test``
    records the test accuracy after every epoch (for time-to-accuracy curves; never used to
    select the model).
    ``weight_lr`` / ``weight_decay`` apply only to trainable weights (the dense baseline).
    ``bf16`` (autocast) and ``channels_last``: ``"auto"`` turns them on where the device computes
    in bf16 natively (CUDA, recent x86 and Arm CPUs) and off elsewhere; the values used are
    stored in the history.
    Returns a :class:`History`; the model ends in eval mode with the best epoch's state.
    """
    check_choice("schedule", schedule, SCHEDULES)
    check_choice("mask_optimizer", mask_optimizer, MASK_OPTIMIZERS)
    check_choice("layer_lr", layer_lr, LAYER_RATES)
    check_number("decay_fraction", decay_fraction, above=0, maximum=1)
    check_number("checkpoint_every", checkpoint_every, minimum=0)
    epochs = check_number("epochs", epochs, integer=True, minimum=1)
    for name, lr in (("mask_lr", mask_lr), ("scale_lr", scale_lr), ("weight_lr", weight_lr)):
        check_number(name, lr, above=0)
    check_number("momentum", momentum, minimum=0)
    check_number("weight_decay", weight_decay, minimum=0)
    patience = check_number("patience", patience, integer=True, minimum=1, optional=True)
    eval_samples = check_number("eval_samples", eval_samples, integer=True, minimum=0)
    device = data.device
    bf16, channels_last, reason = _resolve(device, bf16, channels_last)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizers = make_optimizers(model, mask_lr, scale_lr, weight_lr, momentum, weight_decay, mask_optimizer, layer_lr)
    factor = lr_factor(schedule, epochs, decay_fraction)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in optimizers]
    history, best_state, start = History(), None, 0
    masked = is_masked(model)
    owner = {
        "run_id": run_id,
        "hyperparameters": dict(
            epochs=epochs, mask_lr=mask_lr, scale_lr=scale_lr, weight_lr=weight_lr, momentum=momentum, weight_decay=weight_decay,
            schedule=schedule, decay_fraction=decay_fraction, patience=patience, mask_optimizer=mask_optimizer, layer_lr=layer_lr,
        ),
    }
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint and checkpoint.exists():
        state = load_checkpoint(checkpoint, device)
        check_owner(checkpoint, state, owner, epochs)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise CheckpointError(
                f"checkpoint {checkpoint} holds another network ({str(e).splitlines()[0]}). Fix: delete {checkpoint} to train "
                "this run again from its first epoch, or give this run another checkpoint path."
            ) from e
        if len(state["optimizers"]) != len(optimizers):
            raise CheckpointError(
                f"checkpoint {checkpoint} holds {len(state['optimizers'])} optimizer(s), this run has {len(optimizers)} "
                f"(another mask_optimizer?). Fix: delete {checkpoint} to train this run again from its first epoch."
            )
        for o, saved in zip(optimizers, state["optimizers"]):
            o.load_state_dict(saved)
        for sched, saved in zip(schedulers, state["schedulers"]):
            sched.load_state_dict(saved)
        history, best_state, start = state["history"], state["best_state"], state["epoch"] + 1
        bf16, channels_last = history.bf16, history.channels_last  # a resumed run keeps its precision
        reason = history.precision_reason or reason
        restore_rng(state, device, data)
    if progress is None:
        progress = not os.environ.get("CI")
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(range(start, epochs), desc="epochs", initial=start, total=epochs)
    else:
        bar = _Quiet(range(start, epochs))
    history.bf16, history.channels_last, history.precision_reason = bf16, channels_last, reason
    previous = deterministic_masks(model) if masked else {}
    t_start = time.perf_counter() - history.wall_time
    since_best = 0 if history.best_epoch < 0 else len(history.epochs) - 1 - history.best_epoch
    last_save = None
    for epoch in bar:
        if patience is not None and since_best >= patience:
            history.stopped_early = True
            break
        t0 = time.perf_counter()
        train_loss, train_accuracy, grad_rms = train_one_epoch(model, data, optimizers, bf16, channels_last)
        check_finite(optimizers, train_loss, epoch, checkpoint if checkpoint and checkpoint.exists() else None)
        lr_now = {g["name"]: g["lr"] for g in param_groups(optimizers)}
        for sched in schedulers:
            sched.step()
        synchronize(device)
        epoch_time = time.perf_counter() - t0
        record = {"epoch": epoch, "loss": train_loss, "train_accuracy": train_accuracy, **evaluate_epoch(model, data, bf16, track_test)}
        record.update(epoch_time=epoch_time, lr=lr_now)
        if masked:
            masks = deterministic_masks(model)
            record.update(mask_record(model, masks, previous))
            for name, rms in grad_rms.items():
                record["layers"][name]["grad_rms"] = rms
            previous = masks
        history.epochs.append(record)
        score = record["val_accuracy"] if math.isfinite(record["val_accuracy"]) else record["train_accuracy"]
        if history.best_epoch < 0 or score > history.best_val_accuracy:
            history.best_epoch, history.best_val_accuracy, since_best = epoch, score, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            since_best += 1
        history.wall_time = time.perf_counter() - t_start
        if checkpoint and (last_save is None or time.perf_counter() - last_save >= checkpoint_every or epoch == epochs - 1):
            save_checkpoint(checkpoint, model, optimizers, schedulers, history, best_state, epoch, data, device, owner)
            last_save = time.perf_counter()
        bar.set_postfix(
            loss=f"{train_loss:.3f}", val=f"{record['val_accuracy']:.3f}", **({"density": f"{record['density']:.3f}"} if masked else {})
        )
        if on_epoch is not None:
            on_epoch(record)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    history.test_accuracy = evaluate(model, data, "test", bf16=bf16)["accuracy"]
    if masked:
        history.final_density = density(model).overall
        history.sampled_test_accuracy = [evaluate(model, data, "test", mask="sample", bf16=bf16)["accuracy"] for _ in range(eval_samples)]
    history.wall_time = time.perf_counter() - t_start
    return history
