"""ASLP equals straight-through Gumbel-softmax on [m̂, 0]; the naive form breaks in low precision."""

import pytest
import torch
import torch.nn.functional as F

from gumbel_lite import samplers


def reference_gumbels(shape, seed, dtype=torch.float64):
    """The Gumbel noise F.gumbel_softmax draws after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    return -torch.empty(shape, dtype=dtype).exponential_().log()


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_aslp_identical_to_gumbel_softmax_given_the_same_noise(tau):
    logits = torch.linspace(-6, 6, 4001, dtype=torch.float64)
    g = reference_gumbels((2, *logits.shape), seed=3)
    ours_in = logits.clone().requires_grad_()
    ours = samplers.aslp(ours_in, tau, noise=g[0] - g[1])
    ref_in = logits.clone().requires_grad_()
    torch.manual_seed(3)
    ref = F.gumbel_softmax(torch.stack([ref_in, torch.zeros_like(ref_in)]), tau=tau, hard=True, dim=0)[0]
    assert torch.equal(ours, ref)
    weights = torch.randn_like(logits)  # any downstream loss
    (ours * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad)
    assert ours_in.grad.abs().sum() > 0


def test_aslp_frequencies_match_p_select():
    torch.manual_seed(0)
    logits = torch.tensor([-3.0, -1.0, 0.0, 0.5, 2.0, 4.0])
    n = 40_000
    freq = samplers.aslp(logits.expand(n, -1).contiguous()).mean(0)
    p = torch.sigmoid(logits)
    tolerance = 5 * torch.sqrt(p * (1 - p) / n)
    assert torch.all((freq - p).abs() < tolerance), (freq, p)


def test_aslp_and_gumbel_softmax_agree_statistically():
    torch.manual_seed(1)
    logits = torch.full((200_000,), 0.7)
    ours = samplers.aslp(logits).mean()
    ref = F.gumbel_softmax(torch.stack([logits, torch.zeros_like(logits)]), hard=True, dim=0)[0].mean()
    assert abs(float(ours - ref)) < 0.01
    assert abs(float(ours) - torch.sigmoid(torch.tensor(0.7)).item()) < 0.01


def test_aslp_gradient_is_that_of_the_binary_concrete_relaxation():
    logits = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    noise = torch.tensor([0.3, -0.2, -2.5])
    tau = 0.7
    samplers.aslp(logits, tau, noise=noise).sum().backward()
    y = torch.sigmoid((logits.detach() + noise) / tau)
    torch.testing.assert_close(logits.grad, y * (1 - y) / tau)


def test_naive_formulation_equals_aslp_in_float64():
    logits = torch.linspace(-8, 8, 1001, dtype=torch.float64)
    g = reference_gumbels((2, *logits.shape), seed=5)
    a_in, n_in = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    a = samplers.aslp(a_in, 1.0, noise=g[0] - g[1])
    n = samplers.naive_gumbel(n_in, 1.0, gumbels=g)
    assert torch.equal(a, n)
    a.sum().backward()
    n.sum().backward()
    torch.testing.assert_close(a_in.grad, n_in.grad)


@pytest.mark.parametrize("dtype,large", [(torch.float16, 12.0), (torch.bfloat16, 8.0)])
def test_naive_formulation_breaks_in_low_precision_where_aslp_does_not(dtype, large):
    logits = torch.tensor([-large, -2.0, 0.0, 2.0, large], dtype=dtype)
    naive_in, aslp_in = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    torch.manual_seed(0)
    samplers.naive_gumbel(naive_in).sum().backward()
    torch.manual_seed(0)
    samplers.aslp(aslp_in).sum().backward()
    assert not torch.isfinite(naive_in.grad).all(), "the naive form should produce NaN/inf gradients at large |m̂|"
    assert torch.isfinite(aslp_in.grad).all()


def test_supermask_samples_bernoulli_with_sigmoid_straight_through_gradient():
    torch.manual_seed(0)
    logits = torch.tensor([-2.0, 0.0, 1.5]).repeat(50_000, 1).requires_grad_()
    mask = samplers.supermask(logits)
    assert set(mask.detach().unique().tolist()) <= {0.0, 1.0}
    p = torch.sigmoid(logits.detach()[0])
    assert torch.all((mask.detach().mean(0) - p).abs() < 0.01)
    mask.sum().backward()
    torch.testing.assert_close(logits.grad[0], p * (1 - p))


@pytest.mark.parametrize("keep", [0.1, 0.5, 1.0])
def test_edge_popup_keeps_exactly_the_top_k_scores(keep):
    scores = torch.randn(40, 25, requires_grad=True)
    mask = samplers.edge_popup(scores, keep_fraction=keep)
    k = round(keep * scores.numel())
    assert int(mask.sum()) == k
    kept, dropped = scores.detach().abs()[mask.bool()], scores.detach().abs()[~mask.bool()]
    if len(dropped):
        assert kept.min() >= dropped.max()
    mask.sum().backward()
    torch.testing.assert_close(scores.grad, scores.detach().sign())  # straight through |s|


class _ReferenceGetSubnet(torch.autograd.Function):
    """allenai/hidden-networks' GetSubnet: sort the scores, zero the lowest (1 − k), gradient straight through."""

    @staticmethod
    def forward(ctx, scores, k):
        out = scores.clone()
        _, idx = scores.flatten().sort()
        j = int((1 - k) * scores.numel())
        flat_out = out.flatten()
        flat_out[idx[:j]] = 0
        flat_out[idx[j:]] = 1
        return out

    @staticmethod
    def backward(ctx, g):
        return g, None


def test_edge_popup_score_gradient_matches_the_reference_for_both_signs():
    torch.manual_seed(0)
    weight, x = torch.randn(30, 20), torch.randn(8, 20)
    scores = torch.randn(30, 20)  # about half negative
    assert (scores < 0).any() and (scores > 0).any()
    grads = []
    for formulation in ("ours", "reference"):
        s = scores.clone().requires_grad_(True)
        if formulation == "ours":
            mask = samplers.edge_popup(s, keep_fraction=0.5)
        else:  # the reference layer: GetSubnet.apply(self.scores.abs(), prune_rate)
            mask = _ReferenceGetSubnet.apply(s.abs(), 0.5)
        ((x @ (weight * mask).T) ** 2).sum().backward()
        grads.append((mask.detach(), s.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])
    # a harmful weight with a negative score must move towards |s| -> 0, not away from it
    g_mask = grads[1][1] * scores.sign()  # ∂L/∂|s|
    negative = scores < 0
    lr = 0.5 * float(scores.abs().min() / grads[0][1].abs().max())  # small enough never to cross zero
    step = scores - lr * grads[0][1]
    moving = g_mask != 0
    shrinks = step.abs() < scores.abs()
    assert torch.equal(shrinks[negative & moving], (g_mask > 0)[negative & moving])


def test_deterministic_mask_keeps_nonnegative_logits():
    logits = torch.tensor([-0.1, 0.0, 0.1])
    assert samplers.deterministic_mask("aslp", logits).tolist() == [0.0, 1.0, 1.0]


def test_extreme_logits_give_certain_masks():
    logits = torch.tensor([-50.0, 50.0]).repeat(1000, 1)
    mask = samplers.aslp(logits)
    assert mask[:, 0].sum() == 0 and mask[:, 1].sum() == 1000
