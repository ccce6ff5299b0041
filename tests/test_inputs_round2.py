"""Bad or unusual inputs, round 2: one run id per run, numbers that overflow float32, an empty
training split, and a results line holding U+2028."""

import json

import numpy as np
import pytest

import gumbel_lite as gl
from gumbel_lite.runner import append_jsonl, read_results


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
