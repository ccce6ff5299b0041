"""``gl.doctor()``: what this machine gives a run, in one report: the first cell a Colab reader runs
and the first lines of any bug report."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import models
from .data import DATASETS, default_root, read_meta
from .masking import mask_model
from .train import auto_precision, autocast, default_device, device_name, make_optimizers, synchronize


def data_status(root: str | Path | None = None) -> dict[str, str]:
    """Per data set: ``"ready"`` with its image count, or why it is not usable, in the prepared cache at ``root``."""
    root = Path(root) if root is not None else default_root()
    status = {}
    for name in DATASETS:
        folder = root / name
        if not (folder / "meta.json").exists():
            status[name] = f"missing (python -m gumbel_lite prepare {name} --download --data-root {root})"
            continue
        try:
            meta = read_meta(folder)
        except Exception as e:  # noqa: BLE001 - reported, not raised: the doctor reports every problem
            status[name] = f"unreadable: {e}"
        else:
            counts: dict[str, int] = {}
            for shard in meta["shards"].values():
                counts[shard["split"]] = counts.get(shard["split"], 0) + int(shard["count"])
            status[name] = "ready (" + ", ".join(f"{split} {n:,}" for split, n in counts.items()) + " images)"
    return status


def training_speed(device: torch.device, bf16: bool, channels_last: bool, steps: int = 5, batch_size: int | None = None) -> float:
    """Images per second of ``steps`` training steps of Conv6 (ASLP + Smart Rescale) on random images, after 2 warm-up steps."""
    batch_size = batch_size or (256 if device.type == "cuda" else 64)
    torch.manual_seed(0)
    net = mask_model(models.conv6(num_classes=10), method="aslp", rescale="smart").to(device)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    optimizers = make_optimizers(net, 50.0, 1e-3, 0.01, 0.9, 0.0)
    images = torch.randn(batch_size, 3, 32, 32, device=device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch_size,), device=device)

    def step() -> None:
        with autocast(device, bf16):
            loss = F.cross_entropy(net(images).float(), labels)
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in optimizers:
            o.step()

    for _ in range(2):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps * batch_size / (time.perf_counter() - start)


def doctor(device: str | torch.device | None = None, data_root: str | Path | None = None, speed: bool = True, log=print) -> dict:
    """Report the device, what precision and memory format ``"auto"`` picks there and why, the versions,
    the data cache, and (``speed``) the Conv6 training speed; print it through ``log`` and return it as a dict."""
    import torchvision

    from . import __version__

    device = torch.device(device) if device is not None else default_device()
    bf16, channels_last, reason = auto_precision(device)
    report = {
        "device": str(device),
        "device_name": device_name(device),
        "capability": ".".join(map(str, torch.cuda.get_device_capability(device))) if device.type == "cuda" else None,
        "bf16": bf16,
        "channels_last": channels_last,
        "precision_reason": reason,
        "gumbel_lite": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "data_root": str(Path(data_root) if data_root is not None else default_root()),
        "data": data_status(data_root),
    }
    if speed:
        report["conv6_images_per_s"] = training_speed(device, bf16, channels_last)
    capability = f", compute capability {report['capability']}" if report["capability"] else ""
    lines = [
        f"device      {report['device']}: {report['device_name']}{capability}",
        f"precision   {'bf16 autocast' if bf16 else 'float32'}, {'channels_last' if channels_last else 'default memory format'}: {reason}",
        f"versions    gumbel-lite {__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"Python {report['python']}",
        f"data        {report['data_root']}",
        *(f"  {name:9s} {state}" for name, state in report["data"].items()),
    ]
    if speed:
        lines.append(f"speed       Conv6 ASLP + SR training: {report['conv6_images_per_s']:,.0f} images/s")
    for line in lines:
        log(line)
    return report
