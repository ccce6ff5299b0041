"""The reference run: stored once per seed, loaded by the book exactly as it was trained."""

from __future__ import annotations

import pytest
import torch

import gumbel_lite as gl
from gumbel_lite import reference

from .conftest import make_synthetic


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic(root)
    data = gl.CifarData(root=root, batch_size=32, per_class=20, test_per_class=10)
    return reference.train_reference(1, data, smoke=True), data


def stored(run, folder):
    """Save a smoke run as if it were real (the format is what is tested here)."""
    run.provenance["smoke"] = False
    try:
        return reference.save_reference(run, folder)
    finally:
        run.provenance["smoke"] = True


def test_layer_names_follow_the_layer_order():
    net = gl.mask_model(gl.models.conv4(), method="aslp", rescale="smart")
    names = gl.models.layer_names(net)
    assert list(names.values()) == ["conv1", "conv2", "conv3", "conv4", "fc1", "fc2", "fc3"]
    assert list(names) == [name for name, _, _ in gl.masked_layers(net)]


def test_the_recorder_sees_every_epoch_and_layer(smoke_run):
    run, _ = smoke_run
    assert sorted({r["epoch"] for r in run.epochs}) == [0, 1, 2]
    assert [r["layer"] for r in run.epochs if r["epoch"] == 0] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    first = [r for r in run.epochs if r["epoch"] == 0]
    assert all(r["density"] == 1.0 and r["flips"] == 0.0 for r in first)  # m̂ = 0 keeps everything
    assert all(sum(r["hist"]) == p.mask_logits.numel() for r, (_, _, p) in zip(first, gl.masked_layers(run.model)))
    one = {r["layer"]: r for r in run.epochs if r["epoch"] == 1}
    assert one["fc3"]["flips"] == pytest.approx(1 - one["fc3"]["density"])  # all flips are drops


def test_a_stored_run_loads_with_the_same_masks_scales_and_outputs(smoke_run, tmp_path):
    run, data = smoke_run
    path = stored(run, tmp_path)
    assert path.name == "conv2-aslp-sr-seed1.pt"
    layers = torch.load(path, weights_only=True)["layers"]
    assert layers["6"]["logits"].dtype == torch.uint8  # fc1's float8 bytes: loadable on any torch
    assert layers["0"]["logits"].dtype == torch.float16
    loaded = reference.load_reference(1, tmp_path)
    assert loaded.source == str(path) and loaded.provenance["seed"] == 1
    for (name, _, p), (_, _, q) in zip(gl.masked_layers(run.model), gl.masked_layers(loaded.model)):
        assert torch.equal(gl.deterministic_masks(run.model)[name], gl.deterministic_masks(loaded.model)[name])
        assert float(p.scale.detach()) == float(q.scale.detach())
        gap = (torch.sigmoid(p.mask_logits) - torch.sigmoid(q.mask_logits)).abs().max()
        assert gap < 0.02  # float8 / float16 logits: sampled masks keep their probabilities
    x, _ = next(data.eval_batches("test"))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), run.model.eval()(x))
    assert loaded.history.test_accuracy == run.history.test_accuracy
    assert loaded.epochs == run.epochs


def test_smoke_runs_are_never_stored(smoke_run, tmp_path):
    with pytest.raises(ValueError, match="smoke"):
        reference.save_reference(smoke_run[0], tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_missing_seed_names_the_stored_ones(smoke_run, tmp_path):
    stored(smoke_run[0], tmp_path)
    with pytest.raises(FileNotFoundError, match=r"seed 7 .*conv2-aslp-sr-seed1\.pt.*train_reference"):
        reference.load_reference(7, tmp_path)


def test_other_random_weights_are_refused_with_the_fix(smoke_run, tmp_path, monkeypatch):
    stored(smoke_run[0], tmp_path)
    monkeypatch.setattr(reference, "weights_sha256", lambda model: "0" * 64)
    with pytest.raises(ValueError, match=r"random weights .*differ.*RUN = 'live'"):
        reference.load_reference(1, tmp_path)


def test_the_command_rejects_bad_seeds(capsys):
    from gumbel_lite.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["reference", "--seeds", "0,one"])
    assert exit_info.value.code == 2
    assert "--seeds must be comma-separated integers" in capsys.readouterr().err


def test_the_stored_reference_runs_load_as_recorded():
    folder = reference.default_folder()
    files = sorted(folder.glob("conv2-aslp-sr-seed*.pt"))
    assert [f.name for f in files] == [reference.file_name(s) for s in reference.SEEDS]
    for seed in reference.SEEDS:
        run = reference.load_reference(seed)
        assert run.config == reference.CONFIG and not run.provenance["smoke"]
        assert gl.density(run.model).overall == pytest.approx(run.history.final_density)
        assert run.history.test_accuracy > 0.25  # chance is 0.10


def test_reference_run_names_the_valid_choices():
    with pytest.raises(ValueError, match=r"run.*'stored'.*'live'"):
        gl.reference_run(0, run="cached")


def test_the_command_rejects_an_unknown_device_before_any_work(capsys):
    from gumbel_lite.cli import main

    assert main(["reference", "--device", "tpu"]) == 2
    assert "tpu" in capsys.readouterr().err
