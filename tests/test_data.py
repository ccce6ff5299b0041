"""The prepared cache: round trip, verification errors, subsets, on-device augmentation."""

import json

import numpy as np
import pytest
import torch

import gumbel_lite as gl
from gumbel_lite.data import DatasetError, random_crop_flip, write_cache

from .conftest import make_synthetic


def test_cache_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12_000, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 100, 12_000).astype(np.uint8)
    coarse = (labels // 5).astype(np.uint8)
    write_cache("cifar100", tmp_path, {"train": {"images": images, "labels": labels, "coarse_labels": coarse}}, ["c"] * 100)
    meta = json.loads((tmp_path / "cifar100" / "meta.json").read_text())
    assert sorted(meta["shards"]) == ["train-00.npz", "train-01.npz", "train-02.npz"]
    assert [s["count"] for s in meta["shards"].values()] == [5000, 5000, 2000]
    back = gl.load_split("cifar100", "train", tmp_path)
    # shuffled once: compare after sorting both by pixel content
    assert back["images"].shape == images.shape and back["images"].dtype == np.uint8
    order_in = np.lexsort(images.reshape(len(images), -1)[:, :16].T)
    order_out = np.lexsort(back["images"].reshape(len(images), -1)[:, :16].T)
    assert np.array_equal(images[order_in], back["images"][order_out])
    assert np.array_equal(labels[order_in], back["labels"][order_out])
    assert np.array_equal(coarse[order_in], back["coarse_labels"][order_out])


def test_real_cache_layout_is_read(cifar_root):
    test = gl.load_split("cifar10", "test", cifar_root)
    assert test["images"].shape == (10_000, 32, 32, 3)
    assert np.bincount(test["labels"]).tolist() == [1000] * 10
    mean = test["images"].reshape(-1, 3).mean(0) / 255
    np.testing.assert_allclose(mean, [0.4942, 0.4851, 0.4504], atol=1e-3)


def test_missing_dataset_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(DatasetError, match=r"cifar10 not found: .*meta.json does not exist.*download=True"):
        gl.prepare("cifar10", tmp_path, download=False)


def test_corrupted_shard_names_the_file_and_the_fix(tmp_path):
    make_synthetic(tmp_path)
    shard = tmp_path / "cifar10" / "train-00.npz"
    data = bytearray(shard.read_bytes())
    data[-100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"train-00.npz is corrupted: its sha256 does not match .*Fix: delete"):
        gl.load_split("cifar10", "train", tmp_path)


def test_unknown_dataset_lists_choices(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; choose one of 'cifar10', 'cifar100'"):
        gl.prepare("mnist", tmp_path)


def test_split_is_seeded_and_subset_is_balanced(synthetic_root):
    a = gl.CifarData(root=synthetic_root, per_class=20, seed=1)
    b = gl.CifarData(root=synthetic_root, per_class=20, seed=1)
    c = gl.CifarData(root=synthetic_root, per_class=20, seed=2)
    assert len(a.splits["train"]) + len(a.splits["val"]) == 200
    assert len(a.splits["val"]) == 20
    assert torch.equal(a.splits["val"].labels, b.splits["val"].labels)
    assert not torch.equal(a.splits["val"].images, c.splits["val"].images)
    labels = torch.cat([a.splits["train"].labels, a.splits["val"].labels])
    assert torch.bincount(labels).tolist() == [20] * 10


def test_batches_are_normalised_and_cover_the_split(synthetic_root):
    data = gl.CifarData(root=synthetic_root, batch_size=64, augment=True)
    seen = 0
    for images, labels in data.train_batches():
        assert images.dtype == torch.float32 and images.shape[1:] == (3, 32, 32)
        seen += len(labels)
    assert seen == len(data.splits["train"])
    images, _ = next(data.eval_batches("test"))
    assert abs(images.mean().item()) < 3


def test_unnormalised_batches_are_pixels_in_the_unit_interval(synthetic_root):
    """The authors' pipeline without augmentation is bare ToTensor(): pixels / 255, no standardisation."""
    plain = gl.CifarData(root=synthetic_root, normalize=False)
    standard = gl.CifarData(root=synthetic_root)
    images, _ = next(plain.eval_batches("test"))
    raw = plain.splits["test"].images[: len(images)]
    torch.testing.assert_close(images, raw.float() / 255)
    mean, std = gl.data.MEAN_STD["cifar10"]
    expected = (images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(next(standard.eval_batches("test"))[0], expected, rtol=1e-4, atol=1e-4)


def test_random_crop_flip_is_a_shifted_or_flipped_window():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    out = random_crop_flip(images)
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for i in range(len(images)):
        windows = [padded[i, :, y : y + 32, x : x + 32] for y in range(9) for x in range(9)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(2)) for w in windows)
    assert not torch.equal(out, images)


def test_dataloader_pipeline_gives_the_same_eval_batches(synthetic_root):
    fast = gl.CifarData(root=synthetic_root, pipeline="device", batch_size=50)
    slow = gl.CifarData(root=synthetic_root, pipeline="dataloader", batch_size=50, num_workers=0)
    a = torch.cat([x for x, _ in fast.eval_batches("test")])
    b = torch.cat([x for x, _ in slow.eval_batches("test")])
    torch.testing.assert_close(a, b)
    n = sum(len(y) for _, y in slow.train_batches())
    assert n == len(slow.splits["train"])


def test_bad_pipeline_lists_choices(synthetic_root):
    with pytest.raises(ValueError, match="unknown pipeline 'gpu'; choose one of 'device', 'dataloader'"):
        gl.CifarData(root=synthetic_root, pipeline="gpu")
