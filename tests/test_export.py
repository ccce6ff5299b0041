"""Extraction, prune form and the compact artifact reproduce the deterministic masked forward."""

import pytest
import torch
from torch.nn.utils import prune

import gumbel_lite as gl


def trained_like(method="aslp", rescale="smart", signed_constant=False, network="conv2"):
    torch.manual_seed(0)
    net = gl.mask_model(gl.models.build(network), method=method, rescale=rescale, signed_constant=signed_constant)
    with torch.no_grad():
        for _, _, p in gl.masked_layers(net):
            if method != "edge_popup":
                p.mask_logits.normal_(0, 1)
            if p.scale is not None:
                p.scale.fill_(1.3)
    return net.eval()


@pytest.mark.parametrize("method,rescale", [("aslp", "smart"), ("supermask", "dynamic"), ("edge_popup", None), ("aslp", None)])
def test_extract_equals_deterministic_masked_forward(method, rescale):
    net = trained_like(method, rescale)
    x = torch.randn(4, 3, 32, 32)
    small = gl.extract(net)
    assert not any("parametrizations" in n for n, _ in small.named_parameters())
    torch.testing.assert_close(small(x), net(x))
    torch.testing.assert_close(net(x), small(x))  # the original still works after extraction
    kept = sum(int((m.weight != 0).sum()) for m in small.modules() if hasattr(m, "weight"))
    assert kept == gl.density(net).kept


def test_prune_form_has_weight_orig_and_mask():
    net = trained_like()
    pruned = gl.to_pruned(net)
    layer = pruned[0]
    assert prune.is_pruned(pruned)
    assert hasattr(layer, "weight_orig") and hasattr(layer, "weight_mask")
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(pruned(x), net(x))


@pytest.mark.parametrize("signed_constant", [False, True])
def test_compact_round_trip(tmp_path, signed_constant):
    net = trained_like(signed_constant=signed_constant)
    report = gl.export_compact(net, tmp_path / "sub.pt", network="conv2", num_classes=10)
    assert report.bytes == (tmp_path / "sub.pt").stat().st_size
    assert report.dense_bytes == 4 * 4_300_992
    assert report.kept == gl.density(net).kept
    loaded = gl.load_compact(tmp_path / "sub.pt")
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(loaded(x), net(x))
    # about half the weights kept: fp32 values + 1 mask bit, or 1 sign bit + 1 mask bit per weight
    assert report.ratio > (15 if signed_constant else 1.8)


def test_compact_needs_a_skeleton_when_network_is_unknown(tmp_path):
    net = trained_like()
    gl.export_compact(net, tmp_path / "sub.pt")
    with pytest.raises(ValueError, match="skeleton"):
        gl.load_compact(tmp_path / "sub.pt")
    loaded = gl.load_compact(tmp_path / "sub.pt", model=gl.models.conv2())
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), net(x))


def test_extract_refuses_an_unmasked_model():
    with pytest.raises(ValueError, match="not masked"):
        gl.extract(gl.models.conv2())
