"""Side-by-side speed ratios, measured in one run (never a timed test).

    python scripts/benchmark.py [--device cpu] [--repeats 15] [--out data/results/benchmark-cpu.json]

(a) our ASLP sampler vs F.gumbel_softmax on stacked [m̂, 0] (and the naive formulation) for a
    Conv4-sized mask, forward + backward;
(b) a masked (ASLP + Smart Rescale) vs a dense training step of Conv4, batch 128;
(c) Smart Rescale vs dynamic rescale vs no rescale, same step;
(d) the fast path: training images per second of Conv2, Conv4 and Conv6 (ASLP + Smart Rescale,
    batch 256) in float32 vs bf16 autocast + channels_last, and their ratio.

Timings alternate between the contenders every repeat, so background load affects them alike;
the medians and their ratios are printed and, with --out, saved with provenance.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gumbel_lite as gl  # noqa: E402
from gumbel_lite.runner import provenance  # noqa: E402
from gumbel_lite.train import device_name, make_optimizers  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def race(contenders: dict, repeats: int, device: torch.device, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each contender, alternating them every repeat."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def sampler_step(sample, logits: torch.Tensor, weight: torch.Tensor):
    def step():
        logits.grad = None
        (sample(logits) * weight).sum().backward()

    return step


def stacked_gumbel_softmax(logits: torch.Tensor) -> torch.Tensor:
    return F.gumbel_softmax(torch.stack([logits, torch.zeros_like(logits)]), tau=1.0, hard=True, dim=0)[0]


def training_step(net, optimizer, images, labels):
    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(images), labels).backward()
        optimizer.step()

    return step


def conv4_step(method: str, rescale: str | None, device, images, labels):
    torch.manual_seed(0)
    net = gl.mask_model(gl.models.conv4(), method=method, rescale=rescale).to(device).train()
    (optimizer,) = make_optimizers(net, 50.0, 1e-3, 0.01, 0.9, 0.0)
    return training_step(net, optimizer, images, labels)


def network_step(network: str, fast: bool, device, images, labels):
    """One ASLP + Smart Rescale training step, in float32 or with bf16 autocast + channels_last (as gl.train does)."""
    torch.manual_seed(0)
    net = gl.mask_model(gl.models.build(network)).to(device).train()
    if fast:
        net.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    (optimizer,) = make_optimizers(net, 50.0, 1e-3, 0.01, 0.9, 0.0)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, torch.bfloat16, enabled=fast):
            logits = net(images)
        F.cross_entropy(logits.float(), labels).backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--fast-batch-size", type=int, default=256, help="batch of the fast-path comparison (d)")
    parser.add_argument("--out", type=Path, default=None, help="save the figures as JSON")
    args = parser.parse_args()
    device = torch.device(args.device)
    n = gl.models.count_weights(gl.models.conv4())
    logits = torch.zeros(n, device=device, requires_grad=True)
    weight = torch.randn(n, device=device)
    a = race(
        {
            "aslp": sampler_step(gl.samplers.aslp, logits, weight),
            "gumbel_softmax_stacked": sampler_step(stacked_gumbel_softmax, logits, weight),
            "naive_gumbel": sampler_step(gl.samplers.naive_gumbel, logits, weight),
        },
        args.repeats * 2,
        device,
    )
    images = torch.randn(args.batch_size, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (args.batch_size,), device=device)
    b = race(
        {
            "dense": conv4_step("dense", None, device, images, labels),
            "aslp_smart": conv4_step("aslp", "smart", device, images, labels),
            "aslp_dynamic": conv4_step("aslp", "dynamic", device, images, labels),
            "aslp_none": conv4_step("aslp", None, device, images, labels),
        },
        args.repeats,
        device,
    )
    fast_images = torch.randn(args.fast_batch_size, 3, 32, 32, device=device)
    fast_labels = torch.randint(0, 10, (args.fast_batch_size,), device=device)
    d = {}
    for network in gl.models.NETWORKS:
        d[network] = race(
            {
                precision: network_step(network, precision == "bf16_channels_last", device, fast_images, fast_labels)
                for precision in ("fp32", "bf16_channels_last")
            },
            args.repeats,
            device,
        )
    images_per_second = {n: {k: args.fast_batch_size / v for k, v in t.items()} for n, t in d.items()}
    ratios = {
        "gumbel_softmax_stacked / aslp (sampler, target >= 2)": a["gumbel_softmax_stacked"] / a["aslp"],
        "naive_gumbel / aslp (sampler)": a["naive_gumbel"] / a["aslp"],
        "masked ASLP+SR / dense (Conv4 step, target <= 1.15)": b["aslp_smart"] / b["dense"],
        "dynamic / smart rescale (Conv4 step)": b["aslp_dynamic"] / b["aslp_smart"],
        "smart rescale / no rescale (Conv4 step)": b["aslp_smart"] / b["aslp_none"],
        **{f"{n}: images/s bf16 + channels_last / fp32": ips["bf16_channels_last"] / ips["fp32"] for n, ips in images_per_second.items()},
    }
    print(f"Conv4-sized mask: {n:,} logits; Conv4 training step, batch {args.batch_size}; device {device_name(device)}")
    for name, seconds in {**{f"sampler {k}": v for k, v in a.items()}, **{f"step {k}": v for k, v in b.items()}}.items():
        print(f"  {name:32s} {seconds * 1e3:8.2f} ms (median of {args.repeats})")
    for network, ips in images_per_second.items():
        print(f"  {network} training images/s (batch {args.fast_batch_size}): " + ", ".join(f"{k} {v:,.0f}" for k, v in ips.items()))
    for name, ratio in ratios.items():
        print(f"  {name:55s} {ratio:5.2f}x")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "sampler_seconds": a,
            "step_seconds": b,
            "images_per_second": images_per_second,
            "fast_batch_size": args.fast_batch_size,
            "threads": torch.get_num_threads(),
            "native_bf16": gl.native_bf16(device),
            "ratios": ratios,
            "repeats": args.repeats,
            "batch_size": args.batch_size,
            "mask_logits": n,
            **provenance(device),
        }
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
