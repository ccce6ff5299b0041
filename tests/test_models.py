import pytest
import torch
from torch import nn

from gumbel_lite import models


@pytest.mark.parametrize("name,count", [("conv2", 4_300_992), ("conv4", 2_425_024), ("conv6", 2_261_184)])
def test_weight_counts_match_the_paper(name, count):
    net = models.build(name)
    assert models.count_weights(net) == count
    assert sum(p.numel() for p in net.parameters()) == count  # no biases
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_num_classes_for_cifar100():
    assert models.conv6(num_classes=100)(torch.zeros(1, 3, 32, 32)).shape == (1, 100)


def test_kaiming_normal_fan_in():
    torch.manual_seed(0)
    net = models.conv4()
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            assert m.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.1)
            assert m.bias is None


def test_unknown_network_lists_choices():
    with pytest.raises(ValueError, match="unknown network 'conv8'; choose one of 'conv2', 'conv4', 'conv6'"):
        models.build("conv8")
