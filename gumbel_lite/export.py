"""From a trained mask to something to ship: a plain model, prune form, or a compact artifact.

* :func:`extract` folds mask and scale into the weights: a plain ``nn.Module`` whose forward
  equals the deterministic masked forward.
* :func:`to_pruned` gives the ``torch.nn.utils.prune`` form (``weight_orig`` · ``weight_mask``),
  which other pruning tools understand.
* :func:`export_compact` writes a bit-packed mask plus the kept values (for Signed Constant
  weights: one sign bit per kept weight and one magnitude per layer); :func:`load_compact`
  rebuilds the plain model from it.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from . import models
from .masking import mask_mode, masked_layers

FORMAT_VERSION = 2  # 2: the payload is stored with its sha256; 1: the payload alone (still read)


def _require_masked(model: nn.Module) -> None:
    if next(masked_layers(model), None) is None:
        raise ValueError("model is not masked: nothing to extract (call mask_model and train it first)")


@torch.no_grad()
def folded_weights(model: nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """For each masked layer: (w · rescale factor, deterministic bool mask), keyed by module name.

    w · (s_l · m) and (w · s_l) · m are the same floats for m ∈ {0, 1}, so the folded weight
    times the mask equals the masked forward's weight bit for bit.
    """
    out = {}
    with mask_mode(model, "deterministic"):
        for name, layer, p in masked_layers(model):
            mask = p.mask()
            weight = layer.parametrizations.weight.original
            factor = p.factor(mask)  # exactly the scalar the forward pass multiplies by
            out[name] = (weight if factor is None else weight * factor.to(weight.dtype), mask.bool())
    return out


def _replace_parametrized_weight(layer: nn.Module, weight: torch.Tensor) -> None:
    """Turn a parametrized layer of a *copy* back into a plain one holding ``weight``.

    ``parametrize.remove_parametrizations`` would delete the ``weight`` property from the
    injected class, which a deep copy shares with the original model, breaking the original.
    """
    del layer._modules["parametrizations"]
    layer.__class__ = type(layer).__bases__[0]
    layer.weight = nn.Parameter(weight.detach().clone())


def extract(model: nn.Module) -> nn.Module:
    """A plain copy of ``model`` with mask and scale folded into the weights (zeros where pruned)."""
    _require_masked(model)
    folded = folded_weights(model)
    plain = copy.deepcopy(model)
    for name, layer, _ in list(masked_layers(plain)):
        weight, mask = folded[name]
        _replace_parametrized_weight(layer, weight * mask)
    for p in plain.parameters():
        p.requires_grad_(True)
    return plain.eval()


def to_pruned(model: nn.Module) -> nn.Module:
    """A copy in ``torch.nn.utils.prune`` form: ``weight_orig`` (scale folded in) and ``weight_mask``."""
    _require_masked(model)
    folded = folded_weights(model)
    pruned = copy.deepcopy(model)
    for name, layer, _ in list(masked_layers(pruned)):
        weight, mask = folded[name]
        _replace_parametrized_weight(layer, weight)
        prune.custom_from_mask(layer, "weight", mask.to(weight.dtype))
    for p in pruned.parameters():
        p.requires_grad_(True)
    return pruned.eval()


@dataclass
class CompactReport:
    """What :func:`export_compact` wrote: the artifact's size next to the dense fp32 size."""

    path: Path
    bytes: int
    dense_bytes: int
    kept: int
    total: int

    @property
    def ratio(self) -> float:
        """dense bytes / compact bytes."""
        return self.dense_bytes / self.bytes

    def __str__(self) -> str:
        return (
            f"{self.path}: {self.bytes:,} bytes vs {self.dense_bytes:,} dense fp32 bytes "
            f"({self.ratio:.1f}x smaller; {self.kept:,}/{self.total:,} weights kept)"
        )


def save_atomic(obj, path: Path) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically: a reader sees the old file or the new one, never half."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(buffer.getvalue())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _pack(bits: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.packbits(bits.flatten().cpu().numpy().astype(np.uint8)))


def _unpack(packed: torch.Tensor, n: int) -> torch.Tensor:
    return torch.from_numpy(np.unpackbits(packed.numpy())[:n].astype(bool))


def export_compact(model: nn.Module, path: str | Path, network: str | None = None, num_classes: int | None = None) -> CompactReport:
    """Write the extracted subnetwork compactly to ``path`` (a ``torch.save`` file).

    Per masked layer: the mask bit-packed (1 bit per weight) and the kept values in fp32 — or,
    when every kept weight has the same magnitude (Signed Constant), one sign bit per kept weight
    and that magnitude. Other parameters and buffers are stored as they are. ``network`` and
    ``num_classes`` (for :func:`gumbel_lite.models.build`) let :func:`load_compact` rebuild the
    model without a skeleton.
    """
    _require_masked(model)
    path = Path(path)
    folded = folded_weights(model)
    layers = {}
    kept = total = 0
    for name, (weight, mask) in folded.items():
        values = weight.detach().float().cpu()[mask.cpu()]
        entry: dict = {"shape": list(weight.shape), "mask": _pack(mask)}
        magnitude = values.abs()
        if len(values) and torch.allclose(magnitude, magnitude[0].expand_as(magnitude), rtol=1e-6, atol=0):
            entry.update(signs=_pack(values > 0), magnitude=float(magnitude[0]))
        else:
            entry["values"] = values.clone()
        layers[name] = entry
        kept, total = kept + int(mask.sum()), total + mask.numel()
    plain_state = extract(model).state_dict()
    masked_keys = {f"{name}.weight" if name else "weight" for name in folded}
    rest = {k: v.cpu() for k, v in plain_state.items() if k not in masked_keys}
    payload = {"format": FORMAT_VERSION, "network": network, "num_classes": num_classes, "layers": layers, "rest": rest}
    inner = io.BytesIO()
    torch.save(payload, inner)
    blob = inner.getvalue()
    artifact = {
        "format": FORMAT_VERSION,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "payload": torch.frombuffer(bytearray(blob), dtype=torch.uint8),
    }
    save_atomic(artifact, path)
    dense_bytes = sum(v.numel() * 4 for v in plain_state.values() if v.is_floating_point())
    return CompactReport(path, path.stat().st_size, dense_bytes, kept, total)


def _torch_load(source, path: Path, what: str):
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a truncated, corrupt or unsafe file gets one clear message
        raise ValueError(
            f"{path} is not a readable compact artifact ({what}: {type(e).__name__}: {(str(e).splitlines() or ['no detail'])[0]}). "
            "Fix: export it again with export_compact (only plain tensors and numbers are loaded; no code runs from the file)."
        ) from e


def _read_compact(path: Path) -> dict:
    """The payload of a compact artifact, loaded with ``weights_only=True`` and checked against its sha256."""
    if not path.is_file():
        raise ValueError(f"{path} is not a file: no compact artifact there")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): an interrupted export? Fix: export it again with export_compact")
    artifact = _torch_load(path, path, "outer file")
    if not isinstance(artifact, dict) or artifact.get("format") not in (1, FORMAT_VERSION):
        found = artifact.get("format") if isinstance(artifact, dict) else type(artifact).__name__
        raise ValueError(f"{path}: unknown compact format {found!r} (expected {FORMAT_VERSION})")
    if artifact["format"] == 1:
        return artifact
    payload = artifact.get("payload")
    blob = payload.numpy().tobytes() if isinstance(payload, torch.Tensor) else b""
    if hashlib.sha256(blob).hexdigest() != artifact.get("sha256"):
        raise ValueError(f"{path} is corrupted: its content does not match its sha256. Fix: export it again with export_compact")
    return _torch_load(io.BytesIO(blob), path, "payload")


def load_compact(path: str | Path, model: nn.Module | None = None) -> nn.Module:
    """Rebuild the plain subnetwork saved by :func:`export_compact`.

    ``model``: an unmasked skeleton of the same architecture to load into; optional when the
    artifact names one of our networks.
    """
    artifact = _read_compact(Path(path))
    if model is None:
        if artifact["network"] is None:
            raise ValueError(f"{path} does not name its network: pass a skeleton model=...")
        model = models.build(artifact["network"], artifact["num_classes"] or 10)
    state = dict(artifact["rest"])
    for name, entry in artifact["layers"].items():
        shape = entry["shape"]
        n = int(np.prod(shape))
        mask = _unpack(entry["mask"], n)
        weight = torch.zeros(n)
        if "values" in entry:
            weight[mask] = entry["values"]
        else:
            signs = _unpack(entry["signs"], int(mask.sum()))
            weight[mask] = torch.where(signs, entry["magnitude"], -entry["magnitude"])
        state[f"{name}.weight" if name else "weight"] = weight.view(shape)
    model.load_state_dict(state)
    return model.eval()
