"""The masking mechanism: one parametrization for every Conv/Linear weight and every method.

``mask_model`` freezes a network's weights and registers a :class:`MaskedWeight`
parametrization (``torch.nn.utils.parametrize``) on the ``weight`` of every ``nn.Conv*`` and
``nn.Linear``. The parametrization computes

    weight_used = s_l · w ⊙ m,    m = sampler(m̂)  (training)   or   1[m̂ ≥ 0]  (evaluation)

so the module's own forward is unchanged and any architecture made of these layers works
(our ConvN nets, a torchvision ResNet-18, ...).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from .checks import check_choice, check_number
from .samplers import SAMPLERS, deterministic_mask

METHODS = ("aslp", "aslp_soft", "naive_gumbel", "supermask", "edge_popup", "dense")
RESCALES = (None, "smart", "dynamic")
MASK_MODES = ("auto", "deterministic", "sample")
MASKABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
SIGNED_CONSTANT_LAYERS = ("all", "conv")


class MaskedWeight(nn.Module):
    """Parametrization w ↦ s_l · w ⊙ m with learned mask logits m̂ (``mask_logits``).

    Attributes: ``mask_logits`` (m̂, fp32, one per weight), ``scale`` (s_l, Smart Rescale only),
    ``method``, ``rescale``, ``tau`` (τ), ``keep_fraction`` (Edge-Popup), ``mode``
    (``"auto"``: sample in training, deterministic in eval; or forced).
    """

    def __init__(
        self,
        weight: torch.Tensor,
        method: str = "aslp",
        rescale: str | None = "smart",
        tau: float = 1.0,
        keep_fraction: float = 0.5,
        logit_init: float = 0.0,
    ) -> None:
        super().__init__()
        check_choice("method", method, tuple(SAMPLERS))
        check_choice("rescale", rescale, RESCALES)
        self.method, self.rescale, self.tau, self.keep_fraction = method, rescale, tau, keep_fraction
        self.mode = "auto"
        logits = torch.full_like(weight, logit_init, dtype=torch.float32)
        if method == "edge_popup":  # scores need distinct magnitudes to rank; Edge-Popup's init
            nn.init.kaiming_uniform_(logits, a=math.sqrt(5))
        self.mask_logits = nn.Parameter(logits)
        self.scale = nn.Parameter(torch.ones((), dtype=torch.float32)) if rescale == "smart" else None

    def sampling(self) -> bool:
        return self.mode == "sample" or (self.mode == "auto" and self.training)

    def mask(self) -> torch.Tensor:
        """The mask used by the next forward pass (sampled or deterministic, see ``mode``)."""
        if self.sampling():
            return SAMPLERS[self.method](self.mask_logits, self.tau, self.keep_fraction)
        return deterministic_mask(self.method, self.mask_logits, self.keep_fraction)

    def factor(self, mask: torch.Tensor) -> torch.Tensor | None:
        """The layer's rescaling: Smart: the learned s_l; dynamic: numel / Σm; none: ``None``.

        Dynamic rescale back-propagates through Σm, as Supermask's and the authors' code do
        (``mask * numel / mask.sum()`` inside autograd): each logit also feels how its
        mask value changes the layer's scale.
        """
        if self.rescale == "smart":
            return self.scale
        if self.rescale == "dynamic":
            return mask.numel() / mask.sum().clamp_min(1.0)
        return None

    def multiplier(self, mask: torch.Tensor) -> torch.Tensor:
        """s_l ⊙ m: the mask times its rescaling (:meth:`factor`)."""
        factor = self.factor(mask)
        return mask if factor is None else mask * factor

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.multiplier(self.mask()).to(weight.dtype)

    def extra_repr(self) -> str:
        return f"method={self.method}, rescale={self.rescale}, tau={self.tau}, keep_fraction={self.keep_fraction}"


def mask_model(
    model: nn.Module,
    method: str = "aslp",
    rescale: str | None = "smart",
    signed_constant: bool = False,
    tau: float = 1.0,
    keep_fraction: float = 0.5,
    logit_init: float = 0.0,
    freeze_others: bool = True,
    signed_constant_layers: str = "all",
) -> nn.Module:
    """Turn ``model`` (in place) into a subnetwork search over its frozen random weights.

    ``method``: ``"aslp"`` | ``"aslp_soft"`` (relaxed samples, no straight-through) |
    ``"naive_gumbel"`` | ``"supermask"`` | ``"edge_popup"`` | ``"dense"`` (no mask, weights
    trained normally). ``rescale``: ``None`` | ``"smart"`` | ``"dynamic"``.
    ``signed_constant`` replaces each weight by sign(w) · std of its layer, in every masked
    layer (``signed_constant_layers="all"``) or in the convolutions only (``"conv"``, as the
    authors' code does: its Linear layers keep their random weights). ``tau`` is the
    Gumbel-softmax temperature τ > 0; ``keep_fraction`` ∈ (0, 1] the fraction of weights
    Edge-Popup keeps; ``logit_init`` the initial m̂ (0 → p_sel = 1/2). ``freeze_others`` also
    freezes every other parameter (e.g. batch-norm affine terms of a ResNet), so that only mask
    logits and scales learn. Returns ``model``.
    """
    check_choice("method", method, METHODS)
    check_choice("rescale", rescale, RESCALES)
    check_number("tau", tau, above=0)
    check_number("keep_fraction", keep_fraction, above=0, maximum=1)
    check_number("logit_init", logit_init)
    if method == "dense" and rescale is not None:
        raise ValueError("method 'dense' trains the weights themselves; use rescale=None")
    check_choice("signed_constant_layers", signed_constant_layers, SIGNED_CONSTANT_LAYERS)
    named = [(name, m) for name, m in model.named_modules() if isinstance(m, MASKABLE)]
    if not named:
        raise ValueError("model has no Conv or Linear layer to mask")
    skipped = [
        f"{name} ({type(m).__name__})"
        for name, m in model.named_modules()
        if not isinstance(m, MASKABLE) and isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() >= 2
    ]
    if skipped and method != "dense":
        warnings.warn(
            f"not masked (only {', '.join(t.__name__ for t in MASKABLE)} are): {', '.join(skipped)}; their weights stay "
            + ("frozen" if freeze_others else "trainable"),
            stacklevel=2,
        )
    # every layer is checked before any is changed: a refused model is left exactly as it was
    already = [name or type(m).__name__ for name, m in named if parametrize.is_parametrized(m, "weight")]
    if already:
        raise ValueError(f"layer(s) {', '.join(already)} are already masked; build a fresh model to mask it again")
    layers = [m for _, m in named]
    for layer in layers:
        if signed_constant and (signed_constant_layers == "all" or not isinstance(layer, nn.Linear)):
            with torch.no_grad():
                # sign(0) would be 0: an exactly-zero weight counts as positive
                layer.weight.copy_(torch.where(layer.weight >= 0, 1.0, -1.0) * layer.weight.std())
        if method == "dense":
            continue
        layer.weight.requires_grad_(False)
        if layer.bias is not None:
            layer.bias.requires_grad_(False)
        parametrize.register_parametrization(layer, "weight", MaskedWeight(layer.weight, method, rescale, tau, keep_fraction, logit_init))
    if freeze_others and method != "dense":
        learned = {id(p) for group in ("mask_logits", "scales") for p in parameter_groups(model)[group]}
        for p in model.parameters():
            if id(p) not in learned:
                p.requires_grad_(False)
    return model


def masked_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module, MaskedWeight]]:
    """Yield ``(name, layer, parametrization)`` for every masked layer of ``model``."""
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            for p in module.parametrizations.weight:
                if isinstance(p, MaskedWeight):
                    yield name, module, p


def is_masked(model: nn.Module) -> bool:
    return next(masked_layers(model), None) is not None


def frozen_weight(layer: nn.Module) -> torch.Tensor:
    """The frozen random weight w of a masked layer (before mask and scale)."""
    return layer.parametrizations.weight.original


def parameter_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters split by role: ``mask_logits``, ``scales`` and ``weights`` (the rest)."""
    logits = [p.mask_logits for _, _, p in masked_layers(model)]
    scales = [p.scale for _, _, p in masked_layers(model) if p.scale is not None]
    taken = {id(p) for p in logits + scales}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]
    return {"mask_logits": logits, "scales": scales, "weights": rest}


@contextlib.contextmanager
def mask_mode(model: nn.Module, mode: str):
    """Force masks to be ``"sample"``-d or ``"deterministic"`` inside the block.

    ``"auto"`` (the default outside the block) samples in ``train()`` and uses the deterministic
    mask m̂ ≥ 0 in ``eval()``.
    """
    check_choice("mask mode", mode, MASK_MODES)
    params = [p for _, _, p in masked_layers(model)]
    before = [p.mode for p in params]
    for p in params:
        p.mode = mode
    try:
        yield model
    finally:
        for p, m in zip(params, before):
            p.mode = m


@dataclass
class Density:
    """Kept fraction of the deterministic mask: ``overall`` and ``per_layer`` (by module name)."""

    overall: float
    per_layer: dict[str, float]
    kept: int
    total: int

    def __repr__(self) -> str:
        layers = ", ".join(f"{k}: {v:.3f}" for k, v in self.per_layer.items())
        return f"Density(overall={self.overall:.4f} [{self.kept:,}/{self.total:,}]; {layers})"


@torch.no_grad()
def deterministic_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The evaluation mask of every masked layer, as bool tensors keyed by module name."""
    return {name: deterministic_mask(p.method, p.mask_logits, p.keep_fraction).bool() for name, _, p in masked_layers(model)}


def density(model: nn.Module) -> Density:
    """Global and per-layer fraction of weights kept by the deterministic mask."""
    masks = deterministic_masks(model)
    if not masks:
        raise ValueError("model is not masked (call mask_model first)")
    kept = {k: int(m.sum()) for k, m in masks.items()}
    total = {k: m.numel() for k, m in masks.items()}
    all_kept, all_total = sum(kept.values()), sum(total.values())
    return Density(all_kept / all_total, {k: kept[k] / total[k] for k in masks}, all_kept, all_total)


@torch.no_grad()
def mask_statistics(model: nn.Module) -> dict[str, float | dict[str, float]]:
    """Mean p_sel = σ(m̂) over all weights and the learned Smart Rescale scales s_l."""
    layers = list(masked_layers(model))
    if not layers:
        return {}
    total = sum(p.mask_logits.numel() for _, _, p in layers)
    p_sel = sum(float(torch.sigmoid(p.mask_logits).sum()) for _, _, p in layers) / total
    scales = {n: float(p.scale) for n, _, p in layers if p.scale is not None}
    return {"mean_p_sel": p_sel, "scales": scales}
