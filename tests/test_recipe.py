"""The mask-logit optimisation levers (optimiser, per-layer rate, tail schedule) and the per-layer diagnostics."""

import math
from dataclasses import replace

import pytest
import torch

import gumbel_lite as gl
from gumbel_lite.config import ADDED_FIELDS
from gumbel_lite.runner import history_summary
from gumbel_lite.train import SATURATED, layer_rates, lr_factor, make_optimizers


def masked_conv2(**kwargs):
    torch.manual_seed(0)
    return gl.mask_model(gl.models.conv2(num_classes=10), method="aslp", rescale="smart", **kwargs)


def test_new_fields_at_their_defaults_keep_the_old_run_id():
    config = gl.RunConfig(network="conv2", mask_lr=300.0)
    old_style = {k: v for k, v in config.to_dict().items() if k not in ADDED_FIELDS}
    import hashlib
    import json

    assert config.run_id == hashlib.sha1(json.dumps(old_style, sort_keys=True).encode()).hexdigest()[:12]
    for field, value in (("mask_optimizer", "adam"), ("layer_lr", "weight_std"), ("decay_fraction", 0.5)):
        assert replace(config, **{field: value}).run_id != config.run_id


@pytest.mark.parametrize(("field", "value"), [("mask_optimizer", "lion"), ("layer_lr", "fan_out"), ("schedule", "step")])
def test_unknown_lever_values_are_refused_with_the_choices(field, value):
    with pytest.raises(ValueError, match=rf"{field}.*{value}"):
        gl.RunConfig(**{field: value})


def test_weight_std_rates_follow_fan_in_and_keep_the_largest_layer_at_the_base_rate():
    net = masked_conv2()
    rates = layer_rates(net, "weight_std")
    assert rates["6"] == 1.0  # fc1: 97.5 % of Conv2's weights
    fan_in = {"0": 27, "2": 576, "6": 16384, "8": 256, "10": 256}
    for name, fan in fan_in.items():  # Kaiming-normal weights: std = sqrt(2 / fan_in)
        assert rates[name] == pytest.approx(math.sqrt(fan / 16384), rel=0.02)
    assert set(layer_rates(net, "global").values()) == {1.0}


def test_adam_takes_the_logits_and_the_scales_stay_on_sgd():
    net = masked_conv2()
    sgd, adam = make_optimizers(net, 0.1, 1e-3, 0.01, 0.9, 0.0, mask_optimizer="adam")
    assert isinstance(sgd, torch.optim.SGD) and isinstance(adam, torch.optim.Adam)
    assert [g["name"] for g in sgd.param_groups] == ["scales"] and sgd.param_groups[0]["lr"] == 1e-3
    assert [g["name"] for g in adam.param_groups] == ["mask_logits"] and adam.param_groups[0]["lr"] == 0.1
    (only,) = make_optimizers(net, 300.0, 1e-3, 0.01, 0.9, 0.0, layer_lr="weight_std")
    logit_groups = {g["name"]: g["lr"] for g in only.param_groups if g["name"].startswith("mask_logits")}
    assert logit_groups["mask_logits:6"] == 300.0 and logit_groups["mask_logits:0"] == pytest.approx(300 * math.sqrt(27 / 16384), rel=0.02)


def test_tail_schedule_is_constant_then_decays_over_the_last_fraction():
    f = lr_factor("tail", 20, 0.25)
    assert [f(e) for e in range(15)] == [1.0] * 15
    tail = [f(e) for e in range(15, 20)]
    assert tail[0] == 1.0 and all(a > b for a, b in zip(tail, tail[1:])) and tail[-1] < 0.1
    assert lr_factor("constant", 20)(19) == 1.0 and lr_factor("cosine", 20)(10) == pytest.approx(0.5)


def test_every_epoch_records_per_layer_diagnostics(synthetic_root):
    torch.manual_seed(0)
    net = gl.mask_model(gl.models.conv_net((16,)), method="aslp", rescale="smart")
    data = gl.CifarData(root=synthetic_root, batch_size=32, seed=0)
    live = []

    def measure(record):
        with torch.no_grad():
            live.append(
                {
                    n: (float(p.mask_logits.abs().mean()), float((p.mask_logits.abs() > SATURATED).float().mean()))
                    for n, _, p in gl.masked_layers(net)
                }
            )

    history = gl.train(net, data, epochs=2, mask_lr=2000, progress=False, bf16=False, channels_last=False, on_epoch=measure)
    for record, logits in zip(history.epochs, live, strict=True):
        assert set(record["layers"]) == set(record["density_per_layer"]) == set(logits)
        for name, layer in record["layers"].items():
            assert layer["density"] == pytest.approx(record["density_per_layer"][name])
            assert (layer["mean_abs_logit"], layer["saturated"]) == pytest.approx(logits[name])
            assert 0 <= layer["saturated"] <= 1 and 0 <= layer["flip_rate"] <= 1 and layer["grad_rms"] > 0
    assert any(layer["saturated"] > 0 for layer in history.epochs[-1]["layers"].values())  # lr 2000 saturates some logits
    summary = history_summary(history)
    assert summary["layers"]["0"]["grad_rms"] == [e["layers"]["0"]["grad_rms"] for e in history.epochs]
    assert summary["rates"] == {"mask_logits": 2000, "scales": 1e-3}


def test_grad_rms_is_the_root_mean_square_of_the_logit_gradient(synthetic_root):
    torch.manual_seed(0)
    net = gl.mask_model(gl.models.conv_net((16,)), method="aslp", rescale=None)
    data = gl.CifarData(root=synthetic_root, batch_size=10_000, seed=0, val_fraction=0.0)  # one step per epoch
    seen = {}

    class Spy(torch.optim.SGD):
        def step(self, closure=None):
            for n, _, p in gl.masked_layers(net):
                seen[n] = float(p.mask_logits.grad.pow(2).mean().sqrt())
            return super().step(closure)

    from gumbel_lite.train import train_one_epoch

    (opt,) = make_optimizers(net, 1.0, 1e-3, 0.01, 0.9, 0.0)
    spy = Spy(opt.param_groups)
    _, _, rms = train_one_epoch(net, data, [spy], bf16=False, channels_last=False)
    assert rms == pytest.approx(seen, rel=1e-5)


def test_adam_run_resumes_from_its_checkpoint_identically(synthetic_root, tmp_path):
    def fresh():
        torch.manual_seed(0)
        net = gl.mask_model(gl.models.conv_net((16,)), method="aslp", rescale="smart")
        return net, gl.CifarData(root=synthetic_root, batch_size=32, seed=0)

    kwargs = dict(
        mask_lr=0.05, mask_optimizer="adam", layer_lr="weight_std", schedule="tail", progress=False, bf16=False, channels_last=False
    )
    net, data = fresh()
    whole = gl.train(net, data, epochs=3, **kwargs)
    ckpt = tmp_path / "run.pt"

    def stop_after_epoch_1(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    net, data = fresh()
    with pytest.raises(KeyboardInterrupt):
        gl.train(net, data, epochs=3, checkpoint=ckpt, on_epoch=stop_after_epoch_1, **kwargs)
    net, data = fresh()
    resumed = gl.train(net, data, epochs=3, checkpoint=ckpt, **kwargs)
    assert resumed.column("loss") == whole.column("loss")
    assert resumed.column("lr") == whole.column("lr")
    assert resumed.test_accuracy == whole.test_accuracy
