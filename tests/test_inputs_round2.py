"""Bad or unusual inputs, round 2: one run id per run, numbers that overflow float32, an empty
training split, a results line holding U+2028, layers that cannot be masked, runs asked for
twice, and a killed save's temporary file."""

import json

import numpy as np
import pytest
import torch

import gumbel_lite as gl
from gumbel_lite.runner import append_jsonl, read_results, run_grid


def test_equal_configs_have_one_run_id_whatever_the_number_types():
    assert gl.RunConfig(mask_lr=300).run_id == gl.RunConfig(mask_lr=300.0).run_id
    assert gl.RunConfig(seed=np.int64(1)).run_id == gl.RunConfig(seed=1).run_id  # raised TypeError before
    assert gl.RunConfig(mask_lr=np.float32(300)).to_dict()["mask_lr"] == 300.0
    assert type(gl.RunConfig(seed=np.int64(1)).seed) is int


@pytest.mark.parametrize(("field", "value"), [("mask_lr", 1e300), ("scale_lr", 1e300), ("logit_init", 1e39), ("logit_init", -1e39)])
def test_values_beyond_float32_are_refused_up_front(field, value):
    with pytest.raises(ValueError, match=rf"{field}=.* does not fit in float32"):
        gl.RunConfig(**{field: value})


def test_an_empty_training_split_is_refused_with_the_fix(synthetic_root):
    with pytest.raises(ValueError, match=r"no training images left: 10 images \(per_class=1\) with val_fraction=0.95.*lower val_fraction"):
        gl.CifarData(root=synthetic_root, per_class=1, val_fraction=0.95)


def test_a_record_with_a_line_separator_in_its_label_is_read(tmp_path):
    out = tmp_path / "r.jsonl"
    append_jsonl(out, {"run_id": "a", "label": "conv2\u2028aslp", "config": {}, "metrics": {}})
    (record,) = read_results(out)
    assert record["label"] == "conv2\u2028aslp"


def test_a_raw_line_separator_in_a_file_is_read_too(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text(json.dumps({"run_id": "a", "label": "x\u2028y", "config": {}, "metrics": {}}, ensure_ascii=False) + "\n")
    assert [r["label"] for r in read_results(out)] == ["x\u2028y"]


def test_layers_that_cannot_be_masked_are_named_not_skipped_silently():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ConvTranspose2d(4, 4, 3), torch.nn.BatchNorm2d(4))
    with pytest.warns(UserWarning, match=r"not masked .*: 1 \(ConvTranspose2d\); their weights stay frozen"):
        gl.mask_model(net)
    assert not net[1].weight.requires_grad


def test_a_seed_or_a_run_given_twice_is_one_run(synthetic_root, tmp_path):
    assert len(gl.grid("ablation-tau", seeds=[0, 0])) == len(gl.grid("ablation-tau"))
    config = gl.smoke(gl.RunConfig(network="conv2"))
    notes = []
    run_grid([config, config], tmp_path / "r.jsonl", data_root=synthetic_root, device="cpu", progress=False, log=notes.append)
    assert notes[0] == f"0 of 1 runs already in {tmp_path / 'r.jsonl'}; 1 to run"


def test_a_killed_saves_temporary_is_removed_when_its_run_starts_again(synthetic_root, tmp_path):
    config = gl.smoke(gl.RunConfig(network="conv2"))
    checkpoints = tmp_path / "ck"
    checkpoints.mkdir()
    stale = checkpoints / f"{config.run_id}.pt.abc123.tmp"
    other = checkpoints / "someotherrun.pt.abc123.tmp"
    stale.write_bytes(b"x" * 1000)
    other.write_bytes(b"x")
    out = tmp_path / "r.jsonl"
    run_grid([config], out, data_root=synthetic_root, device="cpu", checkpoint_dir=checkpoints, progress=False, log=lambda _: None)
    assert not stale.exists() and other.exists()
