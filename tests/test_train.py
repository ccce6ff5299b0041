"""The trainer: it learns, it records, it resumes, it stops on bad input and NaN."""

import math

import pytest
import torch

import gumbel_lite as gl


def small_run(root, **kwargs):
    torch.manual_seed(0)
    net = gl.mask_model(gl.models.conv_net((16,)), method=kwargs.pop("method", "aslp"), rescale=kwargs.pop("rescale", "smart"))
    data = gl.CifarData(root=root, batch_size=32, seed=0)
    return net, data


def test_learns_a_synthetic_task_and_records_history(synthetic_root):
    net, data = small_run(synthetic_root)
    history = gl.train(net, data, epochs=2, mask_lr=2000, progress=False, eval_samples=2, bf16=False, channels_last=False)
    assert history.test_accuracy > 0.5  # 10 classes: chance is 0.1
    assert (history.bf16, history.channels_last) == (False, False)
    assert len(history.epochs) == 2
    first = history.epochs[0]
    for key in (
        "loss",
        "train_accuracy",
        "val_accuracy",
        "density",
        "density_per_layer",
        "mean_p_sel",
        "flip_rate",
        "scales",
        "epoch_time",
    ):
        assert key in first
    assert set(first["density_per_layer"]) == {"0", "2", "6", "8", "10"}
    assert 0 < history.final_density < 1
    assert len(history.sampled_test_accuracy) == 2
    assert history.column("val_accuracy")[history.best_epoch] == history.best_val_accuracy
    assert not net.training


def test_scales_move_only_with_smart_rescale(synthetic_root):
    net, data = small_run(synthetic_root)
    gl.train(net, data, epochs=1, mask_lr=2000, progress=False)
    scales = [p.scale.item() for _, _, p in gl.masked_layers(net)]
    assert any(abs(s - 1) > 1e-6 for s in scales)


def test_dense_baseline_trains_weights(synthetic_root):
    torch.manual_seed(0)
    net = gl.mask_model(gl.models.conv_net((16,)), method="dense", rescale=None)
    before = net[0].weight.detach().clone()
    data = gl.CifarData(root=synthetic_root, batch_size=32)
    history = gl.train(net, data, epochs=2, weight_lr=0.01, progress=False)
    assert not torch.equal(before, net[0].weight)
    assert history.test_accuracy > 0.3 and math.isnan(history.final_density)


def test_resume_after_interrupt_continues_exactly(synthetic_root, tmp_path):
    net, data = small_run(synthetic_root)
    full = gl.train(net, data, epochs=2, mask_lr=2000, progress=False)

    class Interrupt(Exception):
        pass

    def stop_after_second(record):
        if record["epoch"] == 0:
            raise Interrupt

    net, data = small_run(synthetic_root)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(Interrupt):
        gl.train(net, data, epochs=2, mask_lr=2000, progress=False, checkpoint=ckpt, on_epoch=stop_after_second)
    net, data = small_run(synthetic_root)  # a fresh process would start like this
    resumed = gl.train(net, data, epochs=2, mask_lr=2000, progress=False, checkpoint=ckpt)
    assert [e["epoch"] for e in resumed.epochs] == [0, 1]
    assert resumed.column("loss") == pytest.approx(full.column("loss"), rel=1e-5)
    assert resumed.test_accuracy == pytest.approx(full.test_accuracy)


def test_early_stopping(synthetic_root):
    net, data = small_run(synthetic_root)
    history = gl.train(net, data, epochs=30, mask_lr=1e-6, patience=2, progress=False)
    assert history.stopped_early and len(history.epochs) < 30


def test_nan_loss_stops_with_a_clear_message(synthetic_root):
    net, data = small_run(synthetic_root)
    with torch.no_grad():
        net[0].parametrizations.weight.original.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="training loss became nan in epoch 0"):
        gl.train(net, data, epochs=2, progress=False)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(epochs=0), "epochs must be an integer >= 1"),
        (dict(mask_lr=0), "mask_lr must be > 0"),
        (dict(schedule="step"), "unknown schedule 'step'; choose one of 'constant', 'cosine'"),
        (dict(patience=0), "patience must be >= 1"),
    ],
)
def test_bad_arguments(synthetic_root, kwargs, message):
    net, data = small_run(synthetic_root)
    with pytest.raises(ValueError, match=message):
        gl.train(net, data, **{"epochs": 1, "progress": False, **kwargs})


def test_cosine_schedule_decays_the_mask_learning_rate(synthetic_root):
    net, data = small_run(synthetic_root)
    history = gl.train(net, data, epochs=4, mask_lr=100, schedule="cosine", progress=False)
    lrs = [e["lr"]["mask_logits"] for e in history.epochs]
    assert lrs[0] == 100 and lrs == sorted(lrs, reverse=True) and lrs[-1] < 50


def test_a_diverged_run_is_recorded_and_the_grid_goes_on(synthetic_root, tmp_path):
    from gumbel_lite.config import RunConfig
    from gumbel_lite.runner import run_grid

    base = dict(network="conv2", per_class=20, test_per_class=10, epochs=1, batch_size=50, track_test=False)
    diverging = RunConfig(**base, method="naive_gumbel", mask_lr=1e9)  # m̂ overflows σ: log(0) in the naive form
    fine = RunConfig(**base, method="aslp", mask_lr=1e9)  # same learning rate, ASLP stays finite
    out = tmp_path / "r.jsonl"
    run_grid([diverging, fine], out, data_root=synthetic_root, device="cpu", progress=False, log=lambda _: None)
    records = {r["run_id"]: r for r in gl.read_results(out)}
    assert records[diverging.run_id]["status"] == "diverged"
    assert "training loss became nan" in records[diverging.run_id]["error"]
    assert records[fine.run_id]["status"] == "ok"
    assert run_grid([diverging, fine], out, data_root=synthetic_root, device="cpu", log=lambda _: None) == []


def test_fast_path_auto_follows_the_device_and_explicit_values_win(monkeypatch):
    import importlib

    train_module = importlib.import_module("gumbel_lite.train")

    monkeypatch.setattr(train_module, "cpu_has_bf16", lambda: True)
    assert train_module.resolve_fast_path("cpu") == (True, True)
    assert train_module.resolve_fast_path("cpu", bf16=False) == (False, True)
    monkeypatch.setattr(train_module, "cpu_has_bf16", lambda: False)
    assert train_module.resolve_fast_path("cpu") == (False, False)
    assert train_module.resolve_fast_path("cpu", channels_last=True) == (False, True)
    assert gl.native_bf16("meta") is False  # neither CUDA nor a CPU
    with pytest.raises(ValueError, match="bf16 must be 'auto', True or False"):
        train_module.resolve_fast_path("cpu", bf16="yes")


def test_the_precision_used_is_recorded(synthetic_root):
    net, data = small_run(synthetic_root)
    history = gl.train(net, data, epochs=1, mask_lr=2000, progress=False, bf16=True, channels_last=False)
    assert (history.bf16, history.channels_last) == (True, False)
