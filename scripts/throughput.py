"""Training throughput (images per second) of Conv6, measured side by side in one run.

    python scripts/throughput.py --device cuda --out data/results/throughput.jsonl [--steps 100] [--smoke]

Variants: dense training; ASLP + Smart Rescale mask training with the on-device pipeline; the
same with the standard DataLoader pipeline (CPU transforms). On CUDA each is also measured with
bf16 autocast + channels_last. Augmentation is on for all. Prints the ratios masked / dense and
on-device / DataLoader and appends one JSON line per variant (with provenance) to --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gumbel_lite as gl  # noqa: E402
from gumbel_lite.runner import append_jsonl, available_cores, provenance  # noqa: E402
from gumbel_lite.train import make_optimizers  # noqa: E402


def measure(method: str, rescale, pipeline: str, fast: bool, args, device: torch.device) -> dict:
    data = gl.CifarData(
        "cifar10",
        args.data_root,
        device,
        args.batch_size,
        augment=True,
        pipeline=pipeline,
        per_class=args.per_class,
        num_workers=args.workers,
    )
    torch.manual_seed(0)
    net = gl.mask_model(gl.models.conv6(), method=method, rescale=rescale).to(device).train()
    if fast:
        net = net.to(memory_format=torch.channels_last)
    (optimizer,) = make_optimizers(net, 50.0, 1e-3, 0.01, 0.9, 5e-4)
    images_done, t0, step = 0, None, 0
    while step < args.warmup + args.steps:
        for images, labels in data.train_batches():
            if step == args.warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0, images_done = time.perf_counter(), 0
            if fast:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, torch.bfloat16, enabled=fast):
                loss = F.cross_entropy(net(images).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            images_done += len(labels)
            step += 1
            if step == args.warmup + args.steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {
        "variant": f"{method}{'+' + rescale if rescale else ''} {pipeline}{' bf16+channels_last' if fast else ''}",
        "method": method,
        "rescale": rescale,
        "pipeline": pipeline,
        "bf16_channels_last": fast,
        "images_per_second": images_done / seconds,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "smoke": args.smoke,
        "network": "conv6",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--workers", type=int, default=min(4, available_cores()), help="DataLoader workers (default: the cores, at most 4)")
    parser.add_argument("--per-class", type=int, default=None)
    parser.add_argument("--smoke", action="store_true", help="a few steps on a subset (CI rehearsal; flagged smoke)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.warmup, args.batch_size, args.per_class, args.workers = 2, 1, 32, 20, 0
    device = torch.device(args.device)
    variants = [("dense", None, "device"), ("aslp", "smart", "device"), ("aslp", "smart", "dataloader")]
    speeds = {}
    for fast in [False, True] if device.type == "cuda" else [False]:
        for method, rescale, pipeline in variants:
            record = {**measure(method, rescale, pipeline, fast, args, device), **provenance(device)}
            append_jsonl(args.out, record)
            speeds[(method, pipeline, fast)] = record["images_per_second"]
            print(f"{record['variant']:45s} {record['images_per_second']:10.0f} images/s", flush=True)
        tag = " (bf16+channels_last)" if fast else ""
        print(f"masked / dense time ratio{tag}: {speeds[('dense', 'device', fast)] / speeds[('aslp', 'device', fast)]:.3f}x")
        print(f"on-device / DataLoader speed-up{tag}: {speeds[('aslp', 'device', fast)] / speeds[('aslp', 'dataloader', fast)]:.2f}x")


if __name__ == "__main__":
    main()
