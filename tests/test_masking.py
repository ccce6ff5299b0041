"""The masking mechanism: frozen weights, modes, rescaling, any Conv/Linear architecture."""

import pytest
import torch
import torchvision
from torch import nn

import gumbel_lite as gl


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))


def test_frozen_weights_get_no_gradient_and_masks_do():
    net = gl.mask_model(tiny_net(), method="aslp", rescale="smart")
    out = net(torch.randn(4, 3, 8, 8))
    out.sum().backward()
    for _, layer, p in gl.masked_layers(net):
        w = layer.parametrizations.weight.original
        assert not w.requires_grad and w.grad is None
        assert p.mask_logits.grad is not None and p.mask_logits.grad.abs().sum() > 0
        assert p.scale.grad is not None
    assert net[3].bias.grad is None and not net[3].bias.requires_grad
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    groups = gl.parameter_groups(net)
    assert trainable == {id(p) for p in groups["mask_logits"] + groups["scales"]}


def test_eval_mask_is_deterministic_and_training_mask_is_sampled():
    net = gl.mask_model(tiny_net(), method="aslp", logit_init=0.0)
    x = torch.randn(2, 3, 8, 8)
    net.eval()
    torch.testing.assert_close(net(x), net(x))
    with gl.mask_mode(net, "sample"):
        a, b = net(x), net(x)
    assert not torch.allclose(a, b)
    net.train()
    with gl.mask_mode(net, "deterministic"):
        torch.testing.assert_close(net(x), net(x))


def test_forward_is_scale_times_weight_times_mask():
    net = gl.mask_model(tiny_net(), method="aslp", rescale="smart")
    layer, p = net[0], net[0].parametrizations.weight[0]
    with torch.no_grad():
        p.mask_logits.normal_()
        p.scale.fill_(1.7)
    net.eval()
    expected = layer.parametrizations.weight.original * (p.mask_logits >= 0) * 1.7
    torch.testing.assert_close(layer.weight, expected)


def test_dynamic_rescale_multiplies_by_numel_over_kept():
    net = gl.mask_model(tiny_net(), method="supermask", rescale="dynamic").eval()
    p = net[0].parametrizations.weight[0]
    with torch.no_grad():
        p.mask_logits.normal_()
    mask = (p.mask_logits >= 0).float()
    expected = net[0].parametrizations.weight.original * mask * (mask.numel() / mask.sum())
    torch.testing.assert_close(net[0].weight, expected)


def test_dynamic_rescale_backpropagates_through_the_kept_count():
    """Supermask's reference code computes numel / Σm inside autograd: each logit also moves the scale."""
    torch.manual_seed(0)
    net = gl.mask_model(tiny_net(), method="supermask", rescale="dynamic")
    p = net[0].parametrizations.weight[0]
    with torch.no_grad():
        p.mask_logits.normal_()
    torch.manual_seed(1)
    net[0].weight.sum().backward()
    ours = p.mask_logits.grad.clone()
    # the reference formulation, with the same Bernoulli draw
    torch.manual_seed(1)
    logits = p.mask_logits.detach().clone().requires_grad_(True)
    prob = torch.sigmoid(logits)
    sampled = (torch.rand_like(prob) < prob).float() + prob - prob.detach()
    w = net[0].parametrizations.weight.original
    ((w.numel() / sampled.sum()) * w * sampled).sum().backward()
    torch.testing.assert_close(ours, logits.grad)
    # ... which differs from treating the kept count as a constant (the form this package used before)
    prob = torch.sigmoid(logits)
    sampled = (sampled.detach() - prob.detach()) + prob
    detached = (w.numel() / sampled.detach().sum()) * w * sampled
    assert not torch.allclose(torch.autograd.grad(detached.sum(), logits)[0], logits.grad)


def test_signed_constant_can_be_limited_to_the_convolutions():
    torch.manual_seed(0)
    net = gl.models.conv2()
    linear_before = net[6].weight.detach().clone()
    gl.mask_model(net, signed_constant=True, signed_constant_layers="conv")
    conv = net[0].parametrizations.weight.original
    assert conv.abs().unique().numel() == 1
    torch.testing.assert_close(net[6].parametrizations.weight.original, linear_before)
    with pytest.raises(ValueError, match="signed_constant_layers 'dense'; choose one of 'all', 'conv'"):
        gl.mask_model(gl.models.conv2(), signed_constant=True, signed_constant_layers="dense")


def test_random_biases_are_kept_and_frozen():
    torch.manual_seed(0)
    net = gl.mask_model(gl.models.conv2(bias=True))
    biases = [m.bias for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(biases) == 5 and all(b is not None and not b.requires_grad for b in biases)
    assert all(b.abs().max() > 0 for b in biases)  # PyTorch's default init: U(±1/sqrt(fan_in))
    assert all(m.bias is None for m in gl.models.conv2().modules() if isinstance(m, torch.nn.Linear))


def test_signed_constant_weights():
    net = tiny_net()
    std = net[0].weight.std().item()
    gl.mask_model(net, signed_constant=True)
    w = net[0].parametrizations.weight.original
    torch.testing.assert_close(w.abs(), torch.full_like(w, std))


def test_signed_constant_gives_an_exact_zero_weight_a_sign():
    net = tiny_net()
    with torch.no_grad():
        net[0].weight[0, 0, 0, 0] = 0.0
    gl.mask_model(net, signed_constant=True)
    w = net[0].parametrizations.weight.original
    assert w[0, 0, 0, 0] > 0 and (w != 0).all()


def test_density_global_and_per_layer():
    net = gl.mask_model(tiny_net(), method="aslp")
    with torch.no_grad():
        net[0].parametrizations.weight[0].mask_logits.fill_(-1)  # 216 weights dropped
    d = gl.density(net)
    assert d.per_layer == {"0": 0.0, "3": 1.0}
    assert d.total == 216 + 5120 and d.kept == 5120
    assert d.overall == pytest.approx(5120 / 5336)


def test_edge_popup_density_is_keep_fraction():
    net = gl.mask_model(gl.models.conv2(), method="edge_popup", rescale=None, keep_fraction=0.3)
    for value in gl.density(net).per_layer.values():
        assert value == pytest.approx(0.3, abs=1e-3)


def test_works_on_torchvision_resnet18():
    net = gl.mask_model(torchvision.models.resnet18(num_classes=10), method="aslp", rescale="smart")
    layers = list(gl.masked_layers(net))
    assert len(layers) == 21  # 20 convolutions + the classifier
    out = net(torch.randn(2, 3, 32, 32))
    out.sum().backward()
    assert all(p.mask_logits.grad is not None for _, _, p in layers)
    assert all(not p.requires_grad for n, p in net.named_parameters() if "mask_logits" not in n and not n.endswith(".scale"))
    small = gl.extract(net)
    small.eval(), net.eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(small(x), net(x))


def test_dense_method_trains_weights_and_has_no_mask():
    net = gl.mask_model(tiny_net(), method="dense", rescale=None)
    assert not gl.masking.is_masked(net)
    assert all(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(method="gumbel"), "unknown method 'gumbel'; choose one of 'aslp'"),
        (dict(rescale="always"), "unknown rescale 'always'"),
        (dict(tau=0.0), "tau must be > 0"),
        (dict(keep_fraction=0.0), r"keep_fraction must be in \(0, 1\]"),
        (dict(keep_fraction=1.5), r"keep_fraction must be in \(0, 1\]"),
        (dict(method="dense", rescale="smart"), "use rescale=None"),
    ],
)
def test_bad_arguments_name_the_problem_and_the_choices(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gl.mask_model(tiny_net(), **kwargs)


def test_masking_twice_is_refused():
    net = gl.mask_model(tiny_net())
    with pytest.raises(ValueError, match="already masked"):
        gl.mask_model(net)


def test_mask_logits_stay_float32_under_bf16_autocast():
    net = gl.mask_model(tiny_net())
    with torch.autocast("cpu", torch.bfloat16):
        out = net(torch.randn(2, 3, 8, 8))
    out.float().sum().backward()
    p = net[0].parametrizations.weight[0]
    assert p.mask_logits.dtype == torch.float32 and p.mask_logits.grad.dtype == torch.float32
