"""The command line on real CIFAR-10: it learns, appends, resumes, and refuses bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gumbel_lite.runner import read_results

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, timeout=600, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "gumbel_lite", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def test_short_conv2_run_beats_chance_by_a_wide_margin(cifar_root, tmp_path):
    out = tmp_path / "r.jsonl"
    cli(
        "train",
        "--network",
        "conv2",
        "--method",
        "aslp",
        "--rescale",
        "smart",
        "--per-class",
        300,
        "--test-per-class",
        100,
        "--epochs",
        3,
        "--mask-lr",
        5000,
        "--batch-size",
        128,
        "--schedule",
        "constant",
        "--bf16",  # fp32 everywhere ("auto" depends on the CPU), so the margin is the same on every machine
        "off",
        "--channels-last",
        "off",
        "--device",
        "cpu",
        "--data-root",
        cifar_root,
        "--out",
        out,
        "--no-progress",
    )
    [record] = read_results(out)
    assert record["metrics"]["test_accuracy"] > 0.25  # chance is 0.10 on 1,000 balanced test images
    assert record["metrics"]["test_images"] == 1000
    assert 0.2 < record["metrics"]["density"] < 0.8
    for key in ("device", "device_name", "torch", "torchvision", "git_commit", "seed", "wall_time", "config", "history", "run_id"):
        assert key in record
    assert record["config"]["mask_lr"] == 5000 and record["smoke"] is False
    assert len(record["history"]["val_accuracy"]) == 3


def test_grid_smoke_appends_and_skips_finished_runs(cifar_root, tmp_path):
    out = tmp_path / "grid.jsonl"
    cli("grid", "ablation-tau", "--smoke", "--data-root", cifar_root, "--out", out, "--device", "cpu", "--jobs", 2)
    records = read_results(out)
    assert len(records) == 4 and all(r["smoke"] for r in records)
    assert sorted(r["config"]["tau"] for r in records) == [0.5, 1.0, 2.0, 4.0]
    again = cli("grid", "ablation-tau", "--smoke", "--data-root", cifar_root, "--out", out, "--device", "cpu")
    assert "4 of 4 runs already" in again.stdout
    assert len(read_results(out)) == 4


def test_interrupted_grid_keeps_finished_runs_and_resumes(cifar_root, tmp_path):
    out = tmp_path / "grid.jsonl"
    args = [
        sys.executable,
        "-m",
        "gumbel_lite",
        "grid",
        "ablation-init",
        "--smoke",
        "--data-root",
        str(cifar_root),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
    ]
    proc = subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while len(read_results(out)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    done = read_results(out)
    assert 2 <= len(done) <= 3
    assert all(json.loads(line) for line in out.read_text().splitlines())  # no torn line
    finished_before = {r["run_id"] for r in done}
    again = cli("grid", "ablation-init", "--smoke", "--data-root", cifar_root, "--out", out, "--device", "cpu")
    assert f"{len(done)} of 3 runs already" in again.stdout
    records = read_results(out)
    assert len(records) == 3 and len({r["run_id"] for r in records}) == 3
    assert finished_before <= {r["run_id"] for r in records}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--method", "gumbel"], "invalid choice: 'gumbel'"),
        (["--network", "conv8"], "invalid choice: 'conv8'"),
        (["--tau", "0"], "tau must be > 0, got 0.0"),
        (["--tau", "-1"], "tau must be > 0"),
        (["--keep-fraction", "1.5"], r"keep_fraction must be in (0, 1], got 1.5"),
        (["--mask-lr", "0"], "mask_lr must be > 0"),
        (["--epochs", "0"], "epochs must be an integer >= 1"),
        (["--test-per-class", "0"], "test_per_class must be >= 1"),
        (["--weight-decay", "-1"], "weight_decay must be >= 0"),
        (["--mask-lr", "inf"], "mask_lr must be a finite number > 0"),
        (["--seed", "-1"], "seed must be an integer in [0, 4294967296)"),
        (["--method", "dense"], "use rescale=None"),
        (["--bf16", "yes"], "invalid choice: 'yes'"),
        (["--signed-constant-layers", "fc"], "invalid choice: 'fc'"),
    ],
)
def test_invalid_input_is_refused_with_a_clear_message(tmp_path, args, message):
    out = tmp_path / "r.jsonl"
    out.write_text('{"run_id": "kept"}\n')
    result = cli("train", *args, "--out", out, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert out.read_text() == '{"run_id": "kept"}\n'


def test_missing_dataset_is_a_clear_error_and_keeps_results(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"run_id": "kept"}\n')
    result = cli("train", "--data-root", tmp_path / "nothing", "--out", out, "--device", "cpu", check=False)
    assert result.returncode == 1
    assert "cifar10 not found" in result.stderr and "--download" in result.stderr
    assert out.read_text() == '{"run_id": "kept"}\n'


def test_grids_are_listed_and_dry_run_counts_the_paper_grid():
    assert "paper-cifar10" in cli("grids").stdout
    lines = cli("grid", "paper-cifar10", "--dry-run", "--seeds", "0,1").stdout.strip().splitlines()
    # 36 published cells per seed; the authors' Edge-Popup ignores rescale, so its ± rescale pairs are one run
    assert len(lines) == 66
    assert len({line.split()[0] for line in lines}) == 66  # every run has its own id


def test_paper_grids_follow_the_authors_protocol():
    import gumbel_lite as gl

    cells = gl.grid("paper-cifar10")
    assert all(c.bias and c.signed_constant_layers == "conv" for c in cells)
    assert all(c.normalize == c.augment for c in cells)  # bare ToTensor() without augmentation
    assert all((c.eval_samples == 10) == (c.method == "supermask") for c in cells)
    assert all(c.rescale is None for c in cells if c.method == "edge_popup")
    assert {c.rescale for c in cells if c.method == "supermask"} == {None, "dynamic"}
    assert (cells[0].epochs, cells[0].schedule) == (100, "cosine")
    authors = gl.grid("authors-cifar100")
    assert {(c.epochs, c.schedule, c.patience) for c in authors} == {(1000, "constant", 100)}
    assert [c.network for c in authors] == ["conv2", "conv2", "conv4", "conv4", "conv6", "conv6"]
    # every published cell maps onto a run of the grid
    for row in gl.paper_cells("cifar10"):
        assert gl.paper_cell(**row) in cells


def test_paper_cpu_grid_runs_in_priority_tiers():
    import gumbel_lite as gl

    tiers = gl.config.paper_cpu_tiers()
    a, b, c = tiers["a"], tiers["b"], tiers["c"]
    # a: the 12 Conv2 CIFAR-10 cells (Edge-Popup's ± rescale pair is one run) and 2 CIFAR-100 cells
    assert len(a) == 13 and {x.network for x in a} == {"conv2"} and {x.seed for x in a} == {0}
    assert sum(x.dataset == "cifar100" for x in a) == 2
    assert len(b) == 4 and {x.network for x in b} == {"conv6"}
    assert len(c) == 8 and {x.seed for x in c} == {1, 2} and {x.network for x in c} == {"conv2"}
    runs = gl.grid("paper-cpu")
    assert runs[: len(a)] == a and len(runs) == len(set(runs)) == sum(map(len, tiers.values()))
    rates = gl.config.CPU_MASK_LR
    assert all(x.epochs == gl.config.CPU_BUDGET["epochs"] and x.mask_lr == rates[gl.config.cpu_rate_key(x.method, x.rescale)] for x in runs)
    # Supermask with dynamic rescale trains at its own rate, every other run at its method's
    assert {x.mask_lr for x in runs if x.method == "supermask" and x.rescale == "dynamic"} == {rates["supermask+DR"]}
    assert {x.mask_lr for x in runs if x.method == "supermask" and x.rescale is None} == {rates["supermask"]}
    assert all(x.bias and x.normalize == x.augment and x.per_class is None for x in runs)  # full data, authors' protocol
