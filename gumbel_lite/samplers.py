"""Samplers: from mask logits m̂ to a binary mask with a straight-through gradient.

Every sampler has the signature ``sampler(logits, tau, keep_fraction) -> mask`` where ``mask``
has the value of a hard {0, 1} sample and a gradient chosen by the method. Adding a method means
adding one function here and one entry in :data:`SAMPLERS`.

ASLP (the paper's Arbitrarily Shifted Log Parametrization) is the straight-through
Gumbel-softmax on the two logits [m̂, 0]. Subtracting two Gumbel variables gives a logistic
variable L, so the two-class sample collapses to the Binary Concrete form (Maddison et al. 2017):

    hard    = 1[m̂ + L > 0]                 (the forward value)
    relaxed = σ((m̂ + L) / τ)               (whose gradient the backward pass uses)

which needs one uniform draw and one sigmoid per weight and no stacked two-class tensor.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Sampler = Callable[[torch.Tensor, float, float], torch.Tensor]


def logistic_noise(like: torch.Tensor) -> torch.Tensor:
    """Standard logistic noise L = log u − log(1 − u), the difference of two Gumbel(0, 1)."""
    u = torch.rand_like(like, dtype=torch.float32)
    return torch.logit(u).to(like.dtype)


class _StraightThroughConcrete(torch.autograd.Function):
    """hard = 1[y > 1/2] forward; ∂y/∂m̂ = y(1 − y)/τ backward, with y = σ((m̂ + L)/τ).

    Only y is saved for backward: the cheapest exact straight-through Gumbel-softmax.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, noise: torch.Tensor, tau: float) -> torch.Tensor:
        relaxed = torch.sigmoid((logits + noise) / tau)
        ctx.save_for_backward(relaxed)
        ctx.tau = tau
        return (logits + noise > 0).to(logits.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (relaxed,) = ctx.saved_tensors
        return grad_out * relaxed * (1 - relaxed) / ctx.tau, None, None


def aslp(logits: torch.Tensor, tau: float = 1.0, keep_fraction: float = 1.0, noise: torch.Tensor | None = None) -> torch.Tensor:
    """ASLP: straight-through Gumbel-softmax on [m̂, 0], in its Binary Concrete form.

    Same distribution (P[mask = 1] = σ(m̂)) and same straight-through gradient as
    ``F.gumbel_softmax(torch.stack([m̂, 0 * m̂]), tau=tau, hard=True, dim=0)[0]``.
    ``noise`` (logistic) may be passed to make the sample reproducible.
    """
    if noise is None:
        noise = logistic_noise(logits)
    return _StraightThroughConcrete.apply(logits, noise, tau)


def aslp_soft(logits: torch.Tensor, tau: float = 1.0, keep_fraction: float = 1.0) -> torch.Tensor:
    """The relaxed (soft) Binary Concrete sample σ((m̂ + L)/τ) itself, without straight-through hardening.

    For the hard-vs-soft ablation: training sees a continuous mask in (0, 1) while evaluation
    uses the binary mask m̂ ≥ 0, a train/test mismatch the straight-through estimator avoids.
    """
    return torch.sigmoid((logits + logistic_noise(logits)) / tau)


def naive_gumbel(logits: torch.Tensor, tau: float = 1.0, keep_fraction: float = 1.0, gumbels: torch.Tensor | None = None) -> torch.Tensor:
    """The naive formulation: STGS on [log σ(m̂), log(1 − σ(m̂))].

    Mathematically identical to :func:`aslp`, but it computes σ, 1 − σ and two logs, and in low
    precision 1 − σ(m̂) rounds to 0 for large m̂ (σ(m̂) to 0 for very negative m̂): the log is
    −∞ and its gradient NaN. Kept for teaching why ASLP exists. ``gumbels`` (shape
    ``[2, *logits.shape]``) may be passed to make the sample reproducible.
    """
    p = torch.sigmoid(logits)
    two = torch.stack([torch.log(p), torch.log(1 - p)])
    if gumbels is None:
        return F.gumbel_softmax(two, tau=tau, hard=True, dim=0)[0]
    soft = torch.softmax((two + gumbels) / tau, dim=0)
    hard = (soft[0] >= soft[1]).to(soft.dtype)
    return hard - soft[0].detach() + soft[0]


def supermask(logits: torch.Tensor, tau: float = 1.0, keep_fraction: float = 1.0) -> torch.Tensor:
    """Supermask (Zhou et al. 2019): mask ~ Bernoulli(σ(m̂)), gradient of σ(m̂) straight through."""
    p = torch.sigmoid(logits)
    hard = (torch.rand_like(p) < p).to(p.dtype)
    return hard + p - p.detach()


class _TopKStraightThrough(torch.autograd.Function):
    """Top-k of the (already non-negative) scores forward; the gradient passes straight through."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, keep_fraction: float) -> torch.Tensor:
        return top_k_mask(scores, keep_fraction)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        return grad_out, None


def top_k_mask(scores: torch.Tensor, keep_fraction: float) -> torch.Tensor:
    """Deterministic mask keeping the ``round(keep_fraction · numel)`` largest |scores| (≥ 1)."""
    k = max(1, round(keep_fraction * scores.numel()))
    mask = torch.zeros(scores.numel(), dtype=scores.dtype, device=scores.device)
    mask[scores.detach().abs().flatten().topk(k, sorted=False).indices] = 1
    return mask.view_as(scores)


def edge_popup(logits: torch.Tensor, tau: float = 1.0, keep_fraction: float = 0.5) -> torch.Tensor:
    """Edge-Popup (Ramanujan et al. 2020): keep the top ``keep_fraction`` of |score| per layer.

    As in the reference code (allenai/hidden-networks, ``GetSubnet.apply(self.scores.abs(), k)``),
    |s| is taken inside autograd and the top-k passes the gradient straight through to |s|, so
    the score receives ∂L/∂s = g · sign(s): a negative score moves in the same direction
    relative to zero as a positive one. ``keep_fraction`` is the fraction of weights KEPT
    (0.3 keeps 30 % and prunes 70 %).
    """
    return _TopKStraightThrough.apply(logits.abs(), keep_fraction)


SAMPLERS: dict[str, Sampler] = {
    "aslp": aslp,
    "aslp_soft": aslp_soft,
    "naive_gumbel": naive_gumbel,
    "supermask": supermask,
    "edge_popup": edge_popup,
}
"""Training-time samplers by method name."""


def deterministic_mask(method: str, logits: torch.Tensor, keep_fraction: float = 1.0) -> torch.Tensor:
    """The evaluation mask: m̂ ≥ 0 (p_sel ≥ 1/2), or the top-k of |score| for Edge-Popup."""
    if method == "edge_popup":
        return top_k_mask(logits, keep_fraction)
    return (logits.detach() >= 0).to(logits.dtype)
