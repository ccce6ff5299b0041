"""Shared fixtures: the real CIFAR-10 prepared cache, and tiny synthetic datasets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gumbel_lite.data import write_cache

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = ROOT.parent / "shared" / "tools" / "materialize_datasets.py"


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> Path:
    """A prepared-cache root holding real CIFAR-10: $GUMBEL_LITE_DATA, or materialized from the offline copy."""
    env = os.environ.get("GUMBEL_LITE_DATA")
    if env and (Path(env) / "cifar10" / "meta.json").exists():
        return Path(env)
    if OFFLINE.exists():
        out = tmp_path_factory.mktemp("cifar")
        subprocess.run([sys.executable, str(OFFLINE), "--out", str(out), "--only", "cifar10"], check=True, capture_output=True)
        return out
    if os.environ.get("CI"):
        pytest.fail("CI needs real CIFAR-10: set GUMBEL_LITE_DATA to a prepared cache (make data)")
    pytest.skip("no CIFAR-10 prepared cache: run `make data` or set GUMBEL_LITE_DATA")


def make_synthetic(root: Path, name: str = "cifar10", n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """A learnable fake dataset in the prepared layout: each class is a distinct colour tint."""
    rng = np.random.default_rng(seed)
    classes = 10 if name == "cifar10" else 100
    splits = {}
    tint = rng.integers(0, 256, (classes, 1, 1, 3))
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, classes, n).astype(np.uint8)
        images = np.clip(tint[labels] + rng.normal(0, 40, (n, 32, 32, 3)), 0, 255).astype(np.uint8)
        splits[split] = {"images": images, "labels": labels}
        if name == "cifar100":
            splits[split]["coarse_labels"] = (labels // 5).astype(np.uint8)
    write_cache(name, root, splits, [f"class{i}" for i in range(classes)])
    return root


@pytest.fixture
def synthetic_root(tmp_path) -> Path:
    return make_synthetic(tmp_path)
