"""What CUDA and MPS users need, checked on the CPU: mocked ``torch.cuda``, ``device="meta"`` loads, pure decisions."""

import importlib
import os
import subprocess
from pathlib import Path

import pytest
import torch

import gumbel_lite as gl
from gumbel_lite import cluster, runner
from gumbel_lite.train import load_checkpoint, precision_for, restore_rng, rng_states

ROOT = Path(__file__).resolve().parents[1]
train_module = importlib.import_module("gumbel_lite.train")  # the module (gl.train is the function)


def small(synthetic_root, rescale="smart"):
    torch.manual_seed(0)
    net = gl.mask_model(gl.models.conv_net((16,)), method="aslp", rescale=rescale)
    return net, gl.CifarData(root=synthetic_root, batch_size=32, seed=0)


# 1. resume on CUDA / MPS: the checkpoint is read onto the CPU, whatever the run's device


def test_a_checkpoint_is_read_onto_the_cpu_for_any_device(synthetic_root, tmp_path):
    net, data = small(synthetic_root)
    ckpt = tmp_path / "run.pt"
    gl.train(net, data, epochs=1, mask_lr=100, checkpoint=ckpt, progress=False)
    state = load_checkpoint(ckpt, torch.device("meta"))  # meta stands in for a GPU: no data may land there
    tensors = [state["rng_cpu"], state["rng_data"], *state["model"].values()]
    assert all(t.device.type == "cpu" for t in tensors)
    restore_rng(state, torch.device("cpu"), data)  # raised before: set_rng_state got a non-CPU tensor


# 1 and 7. the random state of the run's own GPU: cuda:N, and MPS


def test_the_rng_of_the_runs_own_gpu_is_saved_and_restored(monkeypatch, synthetic_root):
    _, data = small(synthetic_root)
    calls = []
    zeros = torch.zeros(8, dtype=torch.uint8)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": calls.append(("get", device)) or zeros)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": calls.append(("set", device)))
    state = rng_states(torch.device("cuda:1"), data)
    restore_rng(state, torch.device("cuda:1"), data)
    assert calls == [("get", torch.device("cuda:1")), ("set", torch.device("cuda:1"))]
    monkeypatch.setattr(torch.mps, "get_rng_state", lambda *a: torch.ones(4, dtype=torch.uint8))
    monkeypatch.setattr(torch.mps, "set_rng_state", lambda state: calls.append(("mps", state.tolist())))
    state = rng_states(torch.device("mps"), data)
    restore_rng(state, torch.device("mps"), data)
    assert calls[-1] == ("mps", [1, 1, 1, 1])


# 2. a T4 (compute capability 7.5) gets float32, not emulated bf16


@pytest.mark.parametrize(
    ("capability", "expected"), [((7, 5), (False, False)), ((7, 0), (False, False)), ((8, 0), (True, True)), ((9, 0), (True, True))]
)
def test_bf16_and_channels_last_only_from_compute_capability_8(capability, expected):
    bf16, channels_last, reason = precision_for("cuda", capability)
    assert (bf16, channels_last) == expected
    assert f"{capability[0]}.{capability[1]}" in reason


def test_auto_reads_the_cuda_capability_and_records_why(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert gl.native_bf16("cuda") is False
    assert gl.resolve_fast_path("cuda") == (False, False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    assert gl.resolve_fast_path("cuda") == (True, True)
    assert precision_for("mps")[:2] == (False, False) and precision_for("cpu", cpu_bf16=True)[:2] == (True, True)


def test_the_precision_reason_is_in_the_history(synthetic_root):
    net, data = small(synthetic_root)
    history = gl.train(net, data, epochs=1, mask_lr=100, progress=False)
    assert history.precision_reason == train_module.auto_precision("cpu")[2]
    net, data = small(synthetic_root)
    assert gl.train(net, data, epochs=1, progress=False, bf16=False, channels_last=False).precision_reason == "set by the caller"


# 3. MPS on torch < 2.5 has no autocast: with bf16 off, autocast is never entered


def test_training_without_bf16_never_enters_autocast(monkeypatch, synthetic_root):
    def no_autocast(*args, **kwargs):
        raise RuntimeError("User specified an unsupported autocast device_type 'mps'")

    monkeypatch.setattr(torch, "autocast", no_autocast)
    net, data = small(synthetic_root)
    history = gl.train(net, data, epochs=1, mask_lr=100, progress=False, bf16=False, channels_last=False)
    assert history.test_accuracy >= 0


# 4. --jobs N prepares the data once, in the parent, before any worker starts


def test_a_grid_prepares_each_data_set_in_the_parent_first(monkeypatch, tmp_path, synthetic_root):
    prepared = []

    class Stop(Exception):
        pass

    def prepare(name, root, download=False):
        prepared.append((name, download))
        raise Stop

    monkeypatch.setattr(runner, "prepare", prepare)
    configs = [gl.smoke(gl.RunConfig(network="conv2", seed=s)) for s in (0, 1)]
    with pytest.raises(Stop):
        runner.run_grid(configs, tmp_path / "r.jsonl", jobs=2, data_root=synthetic_root, device="cpu", download=True, log=lambda _: None)
    assert prepared == [("cifar10", True)]


# 5. extract is bit-exact: it folds the very scalar the forward pass multiplies by


@pytest.mark.parametrize("rescale", ["smart", "dynamic", None])
def test_extract_is_bit_exact(rescale, synthetic_root):
    net, _ = small(synthetic_root, rescale)
    torch.manual_seed(1)
    with torch.no_grad():
        for _, _, p in gl.masked_layers(net):
            p.mask_logits.normal_()
            if p.scale is not None:
                p.scale.fill_(1.2345678)
    net.eval()
    plain = gl.extract(net)
    plain_weights = [m.weight for m in plain.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    for (name, layer, _), weight in zip(gl.masked_layers(net), plain_weights, strict=True):
        assert torch.equal(layer.weight, weight), name
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(plain(x), net(x))


# 6. submitit-local keeps the GPU visible


def test_submitit_local_gives_its_jobs_the_gpu(monkeypatch, tmp_path):
    pytest.importorskip("submitit")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cluster.make_executor("submitit-local", tmp_path).parameters["gpus_per_node"] == 1
    assert cluster.make_executor("submitit-local", tmp_path, gpus_per_run=0).parameters["gpus_per_node"] == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cluster.make_executor("submitit-local", tmp_path).parameters["gpus_per_node"] == 0


# 8. defaults that suit a 2-vCPU Colab VM


@pytest.mark.parametrize(("cores", "jobs"), [(2, 2), (16, 4)])
def test_the_gpu_script_runs_no_more_jobs_than_cores(tmp_path, cores, jobs):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nproc").write_text(f"#!/bin/sh\necho {cores}\n")
    (bin_dir / "fakepython").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": "fakepython", "RESULTS": str(tmp_path / "r")}
    env.pop("JOBS", None)
    subprocess.run(["bash", str(ROOT / "scripts" / "reproduce_gpu.sh")], env=env, check=True, cwd=ROOT)
    grids = [line for line in (tmp_path / "calls").read_text().splitlines() if " grid " in f" {line} "]
    assert grids and all(f"--jobs {jobs} " in line for line in grids)


# 9. checkpoints by wall time: the first epoch, then every checkpoint_every seconds, and the last


def test_checkpoints_are_saved_by_wall_time(monkeypatch, synthetic_root, tmp_path):
    saved = []
    real = train_module.save_checkpoint
    monkeypatch.setattr(train_module, "save_checkpoint", lambda *a: saved.append(a[6]) or real(*a))
    net, data = small(synthetic_root)
    gl.train(net, data, epochs=4, mask_lr=100, checkpoint=tmp_path / "a.pt", checkpoint_every=3600, progress=False)
    assert saved == [0, 3]
    saved.clear()
    net, data = small(synthetic_root)
    gl.train(net, data, epochs=3, mask_lr=100, checkpoint=tmp_path / "b.pt", checkpoint_every=0, progress=False)
    assert saved == [0, 1, 2]
