"""A checkpoint never resumes the wrong run: another run, other hyperparameters, another network,
a newer format or an impossible epoch is refused with the file named and the fix."""

import pytest
import torch

import gumbel_lite as gl
from gumbel_lite.train import CheckpointError


def fresh(synthetic_root, widths=(16,)):
    torch.manual_seed(0)
    net = gl.mask_model(gl.models.conv_net(widths), method="aslp", rescale="smart")
    return net, gl.CifarData(root=synthetic_root, batch_size=32, seed=0)


@pytest.fixture
def checkpoint(synthetic_root, tmp_path):
    path = tmp_path / "run.pt"
    net, data = fresh(synthetic_root)
    gl.train(net, data, epochs=1, mask_lr=50, checkpoint=path, run_id="run-a", progress=False)
    return path


def test_other_hyperparameters_are_refused(synthetic_root, checkpoint):
    net, data = fresh(synthetic_root)
    with pytest.raises(CheckpointError, match=rf"{checkpoint} was made with mask_lr=50 \(this run: 5000\).*delete"):
        gl.train(net, data, epochs=1, mask_lr=5000, checkpoint=checkpoint, progress=False)


def test_another_runs_checkpoint_is_refused(synthetic_root, checkpoint):
    net, data = fresh(synthetic_root)
    with pytest.raises(CheckpointError, match="belongs to run run-a, not to run run-b"):
        gl.train(net, data, epochs=1, mask_lr=50, checkpoint=checkpoint, run_id="run-b", progress=False)


def test_another_network_is_refused_with_the_file_named(synthetic_root, checkpoint):
    net, data = fresh(synthetic_root, widths=(8,))
    with pytest.raises(CheckpointError, match=rf"{checkpoint} holds another network"):
        gl.train(net, data, epochs=1, mask_lr=50, checkpoint=checkpoint, progress=False)


@pytest.mark.parametrize(("field", "value", "message"), [("format", 99, "format 99"), ("epoch", 10, "claims epoch 10")])
def test_a_newer_format_or_an_impossible_epoch_is_refused(synthetic_root, checkpoint, field, value, message):
    state = torch.load(checkpoint, weights_only=True)
    state[field] = value
    torch.save(state, checkpoint)
    net, data = fresh(synthetic_root)
    with pytest.raises(CheckpointError, match=message):
        gl.train(net, data, epochs=3, mask_lr=50, checkpoint=checkpoint, progress=False)


def test_a_config_changed_under_a_run_is_refused_through_the_runner(synthetic_root, tmp_path):
    config = gl.smoke(gl.RunConfig(network="conv2", mask_lr=50.0))
    checkpoints = tmp_path / "ck"
    path = checkpoints / f"{config.run_id}.pt"
    checkpoints.mkdir()
    net, data = fresh(synthetic_root)
    gl.train(net, data, epochs=1, mask_lr=50, checkpoint=path, run_id="someone-else", progress=False)
    with pytest.raises(CheckpointError, match=f"belongs to run someone-else, not to run {config.run_id}"):
        gl.run(config, data_root=synthetic_root, device="cpu", checkpoint_dir=checkpoints, progress=False)
