"""Promises about inputs and files: every value checked, no code run from a file, corruption named (README: Reliability)."""

import math
import os

import numpy as np
import pytest
import torch

import gumbel_lite as gl
from gumbel_lite.config import RunConfig

# 3. no code runs from a file; corruption is detected and named


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.flag}",))


def test_load_compact_runs_no_code_from_the_file(tmp_path):
    evil = _Evil()
    evil.flag = tmp_path / "pwned"
    torch.save({"format": 1, "network": "conv2", "num_classes": 10, "layers": {}, "rest": evil}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="evil.pt is not a readable compact artifact"):
        gl.load_compact(tmp_path / "evil.pt")
    assert not evil.flag.exists()


def _compact(tmp_path):
    torch.manual_seed(0)
    net = gl.mask_model(gl.models.build("conv2"), method="aslp")
    path = tmp_path / "net.pt"
    gl.export_compact(net, path, network="conv2", num_classes=10)
    return net, path


def test_a_flipped_bit_in_a_compact_artifact_is_detected(tmp_path):
    net, path = _compact(tmp_path)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(gl.load_compact(path)(x), gl.extract(net)(x), atol=1e-5)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="net.pt"):
        gl.load_compact(path)


def test_an_empty_compact_file_is_named(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.pt is empty"):
        gl.load_compact(tmp_path / "empty.pt")


def small(root, **kwargs):
    torch.manual_seed(0)
    net = gl.mask_model(gl.models.conv_net((8,)), method=kwargs.pop("method", "aslp"))
    return net, gl.CifarData(root=root, batch_size=64, seed=0, per_class=10, test_per_class=5)


def test_checkpoints_hold_plain_types_and_a_corrupt_one_names_the_file(synthetic_root, tmp_path):
    from gumbel_lite.train import CheckpointError

    checkpoint = tmp_path / "run.pt"
    net, data = small(synthetic_root)
    gl.train(net, data, epochs=1, mask_lr=100, checkpoint=checkpoint, progress=False)
    state = torch.load(checkpoint, weights_only=True)  # no class needs to be trusted
    assert isinstance(state["history"], dict) and state["history"]["epochs"][0]["epoch"] == 0
    net, data = small(synthetic_root)
    history = gl.train(net, data, epochs=2, mask_lr=100, checkpoint=checkpoint, progress=False)
    assert [e["epoch"] for e in history.epochs] == [0, 1]  # resumed
    checkpoint.write_bytes(b"garbage" * 10)
    net, data = small(synthetic_root)
    with pytest.raises(CheckpointError, match=r"run.pt cannot be read .* Fix: delete .*run.pt"):
        gl.train(net, data, epochs=3, mask_lr=100, checkpoint=checkpoint, progress=False)


def test_an_old_format_checkpoint_still_resumes(synthetic_root, tmp_path):
    checkpoint = tmp_path / "run.pt"
    net, data = small(synthetic_root)
    gl.train(net, data, epochs=1, mask_lr=100, checkpoint=checkpoint, progress=False)
    state = torch.load(checkpoint, weights_only=True)
    state["history"] = gl.History(**state["history"])  # the previous format pickled the dataclass
    state.pop("format")
    torch.save(state, checkpoint)
    net, data = small(synthetic_root)
    assert len(gl.train(net, data, epochs=2, mask_lr=100, checkpoint=checkpoint, progress=False).epochs) == 2


# 6. finite values only; non-finite parameters mean a diverged run


@pytest.mark.parametrize(
    "field,value", [("tau", math.inf), ("mask_lr", math.inf), ("weight_decay", -1.0), ("logit_init", math.nan), ("momentum", math.nan)]
)
def test_configs_require_finite_values(field, value):
    with pytest.raises(ValueError, match=f"{field} must be"):
        RunConfig(**{field: value})


@pytest.mark.parametrize("kwargs", [dict(tau=math.inf), dict(logit_init=math.nan)])
def test_mask_model_requires_finite_values(kwargs):
    with pytest.raises(ValueError, match="must be a finite number"):
        gl.mask_model(gl.models.conv_net((8,)), **kwargs)


def test_train_requires_finite_values(synthetic_root):
    net, data = small(synthetic_root)
    for kwargs in (dict(mask_lr=math.inf), dict(weight_decay=-1.0), dict(momentum=math.nan)):
        with pytest.raises(ValueError, match="must be"):
            gl.train(net, data, epochs=1, progress=False, **kwargs)


def test_non_finite_parameters_are_a_divergence_that_names_the_group(synthetic_root):
    net, data = small(synthetic_root, method="edge_popup")
    with torch.no_grad():
        next(gl.masked_layers(net))[2].mask_logits[0, 0, 0, 0] = math.nan  # the loss stays finite
    with pytest.raises(FloatingPointError, match=r"parameters became non-finite in epoch 0; .*mask_logits"):
        gl.train(net, data, epochs=1, mask_lr=100, progress=False)


# 9. mask_model checks every layer before it changes any


def test_a_refused_mask_model_leaves_the_model_untouched():
    torch.manual_seed(0)
    net = gl.models.conv_net((8,))
    last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    torch.nn.utils.parametrize.register_parametrization(last, "weight", torch.nn.Identity())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError, match="already masked") as error:
        gl.mask_model(net, signed_constant=True)
    assert "Sequential" not in str(error.value) and len(str(error.value)) < 200  # names layers, no module repr
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not any(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in net.modules() if m is not last)


# 15. distinct labels, plain integers


def test_tau_ablation_runs_have_distinct_labels():
    labels = [c.label for c in gl.grid("ablation-tau")]
    assert len(set(labels)) == len(labels)


def test_train_accepts_numpy_integers(synthetic_root):
    net, data = small(synthetic_root)
    assert len(gl.train(net, data, epochs=np.int64(1), progress=False).epochs) == 1


def test_a_divergence_after_the_first_epoch_points_at_the_kept_checkpoint(synthetic_root, tmp_path):
    checkpoint = tmp_path / "run.pt"
    net, data = small(synthetic_root)

    def poison(record):
        with torch.no_grad():
            next(gl.masked_layers(net))[2].mask_logits.fill_(math.inf)

    with pytest.raises(FloatingPointError, match=rf"in epoch 1; .*mask_logits.*kept in the checkpoint {checkpoint}"):
        gl.train(net, data, epochs=3, mask_lr=100, checkpoint=checkpoint, progress=False, on_epoch=poison)
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 0
