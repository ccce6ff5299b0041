"""Conv2, Conv4 and Conv6 (Frankle & Carbin 2019), the networks of the paper.

3×3 convolutions 64-64 [-128-128 [-256-256]] with a 2×2 max-pool after each pair, then fully
connected 256-256-classes, ReLU, no batch norm, Kaiming-normal (fan_in, ReLU) weights.
Weight counts for 10 classes: Conv2 4,300,992; Conv4 2,425,024; Conv6 2,261,184.

``bias=False`` (the package's default) builds bias-free layers, which makes every layer
positively homogeneous (the basis of chapter 7's analysis of Smart Rescale). ``bias=True``
keeps PyTorch's default random biases, as the authors' code does; :func:`~gumbel_lite.mask_model`
freezes them with the weights.
"""

from __future__ import annotations

from torch import nn

WIDTHS = {"conv2": (64,), "conv4": (64, 128), "conv6": (64, 128, 256)}
NETWORKS = tuple(WIDTHS)


def conv_net(widths: tuple[int, ...], num_classes: int = 10, image_size: int = 32, bias: bool = False) -> nn.Sequential:
    """A ConvN network: for each width two 3×3 convs + ReLU, then a 2×2 max-pool; FC 256-256-C."""
    layers: list[nn.Module] = []
    channels = 3
    for width in widths:
        for _ in range(2):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=bias), nn.ReLU()]
            channels = width
        layers.append(nn.MaxPool2d(2))
    side = image_size // 2 ** len(widths)
    layers += [
        nn.Flatten(),
        nn.Linear(channels * side * side, 256, bias=bias),
        nn.ReLU(),
        nn.Linear(256, 256, bias=bias),
        nn.ReLU(),
        nn.Linear(256, num_classes, bias=bias),
    ]
    net = nn.Sequential(*layers)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
    return net


def conv2(num_classes: int = 10, bias: bool = False) -> nn.Sequential:
    """Conv2: conv 64-64, pool, FC 256-256-``num_classes``."""
    return conv_net(WIDTHS["conv2"], num_classes, bias=bias)


def conv4(num_classes: int = 10, bias: bool = False) -> nn.Sequential:
    """Conv4: conv 64-64, pool, 128-128, pool, FC 256-256-``num_classes``."""
    return conv_net(WIDTHS["conv4"], num_classes, bias=bias)


def conv6(num_classes: int = 10, bias: bool = False) -> nn.Sequential:
    """Conv6: conv 64-64, pool, 128-128, pool, 256-256, pool, FC 256-256-``num_classes``."""
    return conv_net(WIDTHS["conv6"], num_classes, bias=bias)


def build(network: str, num_classes: int = 10, bias: bool = False) -> nn.Sequential:
    """Build a network by name (``"conv2"``, ``"conv4"``, ``"conv6"``); ``bias`` keeps random frozen biases."""
    if network not in WIDTHS:
        raise ValueError(f"unknown network {network!r}; choose one of {', '.join(map(repr, NETWORKS))}")
    return conv_net(WIDTHS[network], num_classes, bias=bias)


def count_weights(model: nn.Module) -> int:
    """Number of Conv/Linear weights (the quantity the paper's counts refer to)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def layer_names(model: nn.Module) -> dict[str, str]:
    """Readable names of the Conv/Linear layers by module name: ``{"0": "conv1", …, "9": "fc1", …}``.

    Works on plain and masked models (a parametrized layer is still a ``Conv2d`` / ``Linear``).
    """
    names, counts = {}, {"conv": 0, "fc": 0}
    for name, module in model.named_modules():
        kind = "conv" if isinstance(module, nn.Conv2d) else "fc" if isinstance(module, nn.Linear) else None
        if kind:
            counts[kind] += 1
            names[name] = f"{kind}{counts[kind]}"
    return names
