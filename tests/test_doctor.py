"""``doctor``: the device, what "auto" picks there and why, versions, the data cache and the speed, in one report."""

import json

import torch

import gumbel_lite as gl
from gumbel_lite.cli import main
from gumbel_lite.doctor import data_status, training_speed


def test_the_report_names_device_precision_reason_versions_and_data(synthetic_root, tmp_path):
    lines = []
    report = gl.doctor("cpu", synthetic_root, speed=False, log=lines.append)
    assert report["device"] == "cpu" and report["torch"] == torch.__version__
    assert (report["bf16"], report["channels_last"]) == gl.resolve_fast_path("cpu")
    assert report["precision_reason"] and report["precision_reason"] in "\n".join(lines)
    assert report["data"]["cifar10"].startswith("ready (train 600, test 200 images)")
    assert report["data"]["cifar100"].startswith("missing (python -m gumbel_lite prepare cifar100 --download")
    assert any(line.startswith("device") for line in lines) and "conv6_images_per_s" not in report


def test_a_broken_cache_is_reported_not_raised(tmp_path):
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "meta.json").write_text("{not json")
    assert data_status(tmp_path)["cifar10"].startswith("unreadable:")


def test_a_t4_is_reported_as_float32_with_its_capability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    lines = []
    report = gl.doctor(torch.device("cuda"), speed=False, log=lines.append)
    assert report["capability"] == "7.5" and report["bf16"] is False
    assert "compute capability 7.5" in lines[0] and "emulated" in lines[1]


def test_the_speed_is_measured_from_real_steps():
    assert training_speed(torch.device("cpu"), bf16=False, channels_last=False, steps=1, batch_size=4) > 0


def test_the_command_prints_one_json_object(capsys, synthetic_root):
    assert main(["doctor", "--json", "--no-speed", "--device", "cpu", "--data-root", str(synthetic_root)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["device"] == "cpu" and "cifar10" in report["data"]
