"""CIFAR-10/100: a prepared on-disk cache, and two input pipelines.

The prepared cache (one layout for every machine)::

    ROOT/cifar10/meta.json                       classes, counts, sha256 of every shard
    ROOT/cifar10/train-00.npz … train-09.npz     images uint8 [N, 32, 32, 3] (HWC RGB), labels uint8 [N]
    ROOT/cifar10/test-00.npz, test-01.npz        (CIFAR-100 shards also hold coarse_labels)

On a machine with internet, ``download=True`` lets torchvision fetch the dataset once into
``ROOT/downloads`` and converts it into this layout; afterwards only the cache is read. ROOT
defaults to ``$GUMBEL_LITE_DATA`` or ``data/``.

Pipelines: ``"device"`` (the fast path) keeps the whole uint8 dataset on the device and does
random crop (pad 4), horizontal flip and scaling there as a few tensor ops per batch;
``"dataloader"`` is the standard torchvision ``DataLoader`` with CPU transforms. Images are
standardised with the dataset's channel mean and std (``normalize=True``) or only scaled to
[0, 1] (``normalize=False``, torchvision's bare ``ToTensor()``).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checks import check_choice, check_number

DATASETS = {"cifar10": 10, "cifar100": 100}
PIPELINES = ("device", "dataloader")
SHARD_SIZE = 5000
# Normalisation: the paper's CIFAR-10 statistics; CIFAR-100's own for CIFAR-100.
MEAN_STD = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


class DatasetError(RuntimeError):
    """A dataset is missing or corrupted; the message names the file and the fix."""


def default_root() -> Path:
    """``$GUMBEL_LITE_DATA`` if set, else ``data/`` (relative to the working directory)."""
    return Path(os.environ.get("GUMBEL_LITE_DATA", "data"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` to a unique temporary file, readable by everyone the umask allows (a shared cache), then renamed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    np.savez(tmp, **arrays)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def write_cache(name: str, root: Path, splits: dict[str, dict[str, np.ndarray]], classes: list[str], extra: dict | None = None) -> Path:
    """Write ``splits[split] = {"images", "labels", ["coarse_labels"]}`` in the prepared layout.

    Each split is shuffled once with a fixed seed (so every shard is class-balanced) and cut
    into shards of 5,000 images.
    """
    out = Path(root) / name
    out.mkdir(parents=True, exist_ok=True)
    meta: dict = {"name": name, "shard_size": SHARD_SIZE, "classes": classes, **(extra or {})}
    shards = {}
    for split, arrays in splits.items():
        order = np.random.default_rng(0).permutation(len(arrays["labels"]))
        meta[f"{split}_count"] = len(order)
        for k, lo in enumerate(range(0, len(order), SHARD_SIZE)):
            idx = order[lo : lo + SHARD_SIZE]
            target = out / f"{split}-{k:02d}.npz"
            atomic_savez(target, **{key: np.ascontiguousarray(a[idx]) for key, a in arrays.items()})
            shards[target.name] = {"split": split, "count": len(idx), "sha256": sha256_file(target)}
    meta["layout"] = "{split}-{k:02d}.npz with images uint8 [N,32,32,3] (HWC RGB), labels uint8 [N]"
    meta["shards"] = shards
    tmp = out / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / "meta.json")
    return out


def download_to_cache(name: str, root: Path) -> Path:
    """Download with torchvision into ``root/downloads`` and convert to the prepared cache."""
    import torchvision

    check_choice("dataset", name, tuple(DATASETS))
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    raw = Path(root) / "downloads"
    splits, classes = {}, []
    for split in ("train", "test"):
        ds = cls(str(raw), train=split == "train", download=True)
        arrays = {"images": ds.data.astype(np.uint8), "labels": np.asarray(ds.targets, dtype=np.uint8)}
        if name == "cifar100":  # torchvision drops the 20 superclasses; read them from the raw file
            with open(Path(ds.root) / ds.base_folder / split, "rb") as f:
                arrays["coarse_labels"] = np.asarray(pickle.load(f, encoding="latin1")["coarse_labels"], np.uint8)
        splits[split], classes = arrays, list(ds.classes)
    return write_cache(name, root, splits, classes)


def _fix(name: str, root: Path) -> str:
    return f"Fix: python -m gumbel_lite prepare {name} --download --data-root {root} (it repairs the cache)"


def read_meta(folder: Path) -> dict:
    """The cache's ``meta.json``, checked: a bad one is a :class:`DatasetError` that names it."""
    path = folder / "meta.json"
    try:
        meta = json.loads(path.read_text())
        ok = isinstance(meta, dict) and isinstance(meta.get("shards"), dict) and isinstance(meta.get("classes"), list)
        ok = ok and all(isinstance(v, dict) and {"split", "count", "sha256"} <= set(v) for v in meta["shards"].values())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path} cannot be read ({e}). {_fix(folder.name, folder.parent)}") from e
    if not ok:
        raise DatasetError(f"{path} is not a prepared-cache index (no valid 'shards' / 'classes'). {_fix(folder.name, folder.parent)}")
    return meta


def check_cache(folder: Path, verify: bool = True) -> str | None:
    """What is wrong with a prepared cache (missing, unlisted or corrupted shards, bad counts), or ``None``."""
    try:
        meta = read_meta(folder)
    except DatasetError as e:
        return str(e)
    for split in ("train", "test"):
        listed = {k: v for k, v in meta["shards"].items() if v["split"] == split}
        if not listed:
            return f"{folder / 'meta.json'} lists no {split} shard"
        total = sum(v["count"] for v in listed.values())
        if f"{split}_count" in meta and total != meta[f"{split}_count"]:
            return f"{folder / 'meta.json'} lists {total} {split} images in its shards, but {split}_count is {meta[f'{split}_count']}"
        for shard, entry in listed.items():
            path = folder / shard
            if not path.exists():
                return f"{path} is missing"
            if verify and sha256_file(path) != entry["sha256"]:
                return f"{path} is corrupted (sha256 mismatch)"
    return None


def prepare(name: str, root: str | Path | None = None, download: bool = False) -> Path:
    """Return the prepared-cache folder of ``name``, downloading and converting it if allowed.

    With ``download=True`` an existing cache is checked (every shard against ``meta.json``) and
    rebuilt when a shard is missing or corrupted, or ``meta.json`` is bad.
    """
    check_choice("dataset", name, tuple(DATASETS))
    root = Path(root) if root is not None else default_root()
    folder = root / name
    if (folder / "meta.json").exists():
        if not download:
            read_meta(folder)
            return folder
        problem = check_cache(folder)
        if problem is None:
            return folder
        print(f"repairing the {name} cache in {folder}: {problem}")
        return download_to_cache(name, root)
    if not download:
        raise DatasetError(
            f"{name} not found: {folder / 'meta.json'} does not exist and downloads are off. "
            f"Fix: pass download=True (CLI: --download) to fetch it with torchvision into {root}, "
            f"or set GUMBEL_LITE_DATA / --data-root to a folder holding a prepared cache."
        )
    return download_to_cache(name, root)


def load_split(
    name: str,
    split: str,
    root: str | Path | None = None,
    download: bool = False,
    verify: bool = True,
    max_shards: int | None = None,
) -> dict[str, np.ndarray]:
    """Read one split (``"train"`` or ``"test"``) of the prepared cache, checking every sha256, count, shape and dtype."""
    check_choice("split", split, ("train", "test"))
    folder = prepare(name, root, download)
    root = folder.parent
    meta = read_meta(folder)
    shards = sorted(k for k, v in meta["shards"].items() if v["split"] == split)[:max_shards]
    if not shards:
        raise DatasetError(f"{folder / 'meta.json'} lists no {split} shard. {_fix(name, root)}")
    listed = sum(meta["shards"][k]["count"] for k in shards)
    expected = meta.get(f"{split}_count")
    if max_shards is None and expected is not None and listed != expected:
        raise DatasetError(
            f"{folder / 'meta.json'} lists {listed:,} {split} images in its shards but {split}_count is {expected:,}: "
            f"a shard is missing from the index. {_fix(name, root)}"
        )
    parts = []
    for shard in shards:
        path = folder / shard
        if not path.exists():
            raise DatasetError(f"{path} is missing (listed in {folder / 'meta.json'}). {_fix(name, root)}")
        if verify and sha256_file(path) != meta["shards"][shard]["sha256"]:
            raise DatasetError(
                f"{path} is corrupted: its sha256 does not match {folder / 'meta.json'}. "
                f"Fix: delete {path}, then {_fix(name, root)[5:]}"
            )
        count = meta["shards"][shard]["count"]
        with np.load(path) as z:
            part = {k: z[k] for k in z.files}
        shapes = {"images": (count, 32, 32, 3), "labels": (count,), "coarse_labels": (count,)}
        for key in ("images", "labels") + (("coarse_labels",) if "coarse_labels" in part else ()):
            array = part.get(key)
            if array is None or array.shape != shapes[key] or array.dtype != np.uint8:
                found = "nothing" if array is None else f"{array.dtype} {list(array.shape)}"
                raise DatasetError(
                    f"{path}: {key} must be uint8 {list(shapes[key])} (HWC images, as {folder / 'meta.json'} says), "
                    f"found {found}. {_fix(name, root)}"
                )
        parts.append(part)
    keys = set(parts[0])
    if any(set(p) != keys for p in parts):
        raise DatasetError(f"the {split} shards in {folder} do not hold the same arrays. {_fix(name, root)}")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def per_class_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` images of every class (seeded), for small CPU demos."""
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:n] for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def random_crop_flip(images: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with zero padding ``pad`` and random horizontal flip, for a NCHW batch."""
    n, c, h, w = images.shape
    dev = images.device
    padded = F.pad(images, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n, 1), device=dev, generator=generator)
    rows = (dy + torch.arange(h, device=dev))[:, None, :, None]
    cols = (dx + torch.arange(w, device=dev))[:, None, None, :]
    out = padded[torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None], rows, cols]
    flip = torch.rand(n, device=dev, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, 3, 32, 32]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)


class CifarData:
    """CIFAR-10/100 with a seeded train/validation split, ready to batch on ``device``.

    ``train_batches()`` yields augmented, normalised float batches (augmentation only when
    ``augment``); ``eval_batches(split)`` yields un-augmented batches of ``"train"``, ``"val"``
    or ``"test"``. ``per_class`` keeps n training images per class (CPU demos); ``test_per_class``
    does the same for the test set. ``normalize=False`` scales pixels to [0, 1] without
    standardising them (the authors' pipeline when they do not augment).
    """

    def __init__(
        self,
        name: str = "cifar10",
        root: str | Path | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 256,
        augment: bool = False,
        val_fraction: float = 0.1,
        seed: int = 0,
        per_class: int | None = None,
        test_per_class: int | None = None,
        pipeline: str = "device",
        download: bool = False,
        num_workers: int = 2,
        normalize: bool = True,
    ) -> None:
        check_choice("dataset", name, tuple(DATASETS))
        check_choice("pipeline", pipeline, PIPELINES)
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        batch_size = check_number("batch_size", batch_size, integer=True, minimum=1)
        per_class = check_number("per_class", per_class, integer=True, minimum=1, optional=True)
        test_per_class = check_number("test_per_class", test_per_class, integer=True, minimum=1, optional=True)
        self.name, self.device, self.batch_size, self.augment = name, torch.device(device), batch_size, augment
        self.pipeline, self.num_workers, self.seed = pipeline, num_workers, seed
        self.num_classes = DATASETS[name]
        folder = prepare(name, root, download)
        self.classes = read_meta(folder)["classes"]
        train, test = load_split(name, "train", root), load_split(name, "test", root)
        train_idx = np.arange(len(train["labels"]))
        if per_class is not None:
            train_idx = per_class_subset(train["labels"], per_class, seed)
        order = np.random.default_rng(seed).permutation(train_idx)
        n_val = int(round(val_fraction * len(order)))
        if n_val >= len(order):
            raise ValueError(
                f"no training images left: {len(order):,} images (per_class={per_class}) with val_fraction={val_fraction} "
                f"hold {n_val:,} out for validation; lower val_fraction or raise per_class"
            )
        test_idx = per_class_subset(test["labels"], test_per_class, seed) if test_per_class is not None else slice(None)
        self.splits = {
            "train": self._to_device(train, np.sort(order[n_val:])),
            "val": self._to_device(train, np.sort(order[:n_val])),
            "test": self._to_device(test, test_idx),
        }
        self.standardize = normalize
        mean, std = MEAN_STD[name] if normalize else ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1) * 255
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def _to_device(self, arrays: dict[str, np.ndarray], idx) -> Split:
        images = torch.from_numpy(arrays["images"][idx]).permute(0, 3, 1, 2).contiguous()
        labels = torch.from_numpy(arrays["labels"][idx].astype(np.int64))
        if self.pipeline == "device":
            images, labels = images.to(self.device), labels.to(self.device)
        return Split(images, labels)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW → float, standardised with the dataset's channel statistics (or scaled to [0, 1])."""
        return (images.float() - self.mean) / self.std

    def train_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled (and, if ``augment``, augmented) training batches."""
        if self.pipeline == "dataloader":
            yield from self._dataloader("train", shuffle=True, augment=self.augment)
            return
        split = self.splits["train"]
        order = torch.randperm(len(split), device=self.device, generator=self.generator)
        for lo in range(0, len(order), self.batch_size):
            idx = order[lo : lo + self.batch_size]
            images = split.images[idx]
            if self.augment:
                images = random_crop_flip(images, generator=self.generator)
            yield self.normalize(images), split.labels[idx]

    def eval_batches(self, split: str = "test", batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Un-augmented batches of ``"train"``, ``"val"`` or ``"test"``, in order."""
        check_choice("split", split, tuple(self.splits))
        if self.pipeline == "dataloader":
            yield from self._dataloader(split, shuffle=False, augment=False)
            return
        data, bs = self.splits[split], batch_size or 1024
        for lo in range(0, len(data), bs):
            yield self.normalize(data.images[lo : lo + bs]), data.labels[lo : lo + bs]

    def _dataloader(self, split: str, shuffle: bool, augment: bool):
        from torch.utils.data import DataLoader

        loader = DataLoader(
            _TransformDataset(self.splits[split], augment),
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        for images, labels in loader:
            yield self.normalize(images.to(self.device, non_blocking=True)), labels.to(self.device, non_blocking=True)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v):,}" for k, v in self.splits.items())
        options = f"augment={self.augment}, normalize={self.standardize}, pipeline={self.pipeline}, device={self.device}"
        return f"CifarData({self.name}, {sizes}, {options})"


class _TransformDataset(torch.utils.data.Dataset):
    """Per-image torchvision transforms on the CPU: the standard DataLoader pipeline."""

    def __init__(self, split: Split, augment: bool) -> None:
        from torchvision.transforms import v2

        self.split = split
        self.transform = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()]) if augment else None

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        image = self.split.images[i]
        return (self.transform(image) if self.transform else image), self.split.labels[i]
