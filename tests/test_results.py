"""Reading results: smoke runs are never shown as results; provenance is complete."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import gumbel_lite as gl  # noqa: E402
from gumbel_lite.results import load_results, mean_std, provenance, results_frame, stamp  # noqa: E402


def record(seed, smoke=False, status="ok", accuracy=0.5, tau=1.0):
    config = gl.RunConfig(network="conv2", tau=tau, seed=seed, smoke=smoke)
    return {
        "run_id": config.run_id,
        "label": config.label,
        "config": config.to_dict(),
        "seed": seed,
        "smoke": smoke,
        "status": status,
        "metrics": {"test_accuracy": None if status != "ok" else accuracy, "density": 0.5},
        "history": {},
        "wall_time": 1.0,
        "device_name": "CPU",
        "torch": "2.x",
        "git_commit": "abcdef1234+dirty",
        "finished_at": f"2026-01-0{seed + 1}T10:00:00+00:00",
    }


def test_smoke_runs_are_dropped_unless_asked_for(tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    for r in (record(0), record(1, smoke=True)):
        gl.append_jsonl(out, r)
    real = load_results(out)
    assert [r["seed"] for r in real] == [0]
    assert "Ignored 1 smoke run" in capsys.readouterr().out
    assert len(load_results(out, smoke=True)) == 2
    assert load_results(tmp_path / "missing.jsonl") == []


def test_frame_and_statistics():
    frame = results_frame([record(0, accuracy=0.4), record(1, accuracy=0.6), record(2, status="diverged"), record(0, tau=2.0)])
    assert list(frame["test_acc"][:2]) == [40.0, 60.0] and math.isnan(frame["test_acc"][2])
    stats = mean_std(frame, "tau")
    row = stats[stats["tau"] == 1.0].iloc[0]
    assert row["mean"] == 50.0 and row["n"] == 2  # the diverged run is not averaged


def test_provenance_names_device_seeds_commit_and_smoke():
    text = provenance([record(0), record(1, status="diverged")])
    assert "2 runs (1 diverged)" in text and "seeds 0, 1" in text and "commit abcdef1+dirty" in text
    assert "SMOKE" not in text
    assert provenance([record(0, smoke=True)]).startswith("SMOKE RUNS, NOT RESULTS")
    fig = plt.figure()
    stamp(fig, [record(0, smoke=True)])
    assert any("NOT RESULTS" in t.get_text() for t in fig.texts)
    plt.close(fig)


def test_smoke_config_is_flagged_and_small():
    c = gl.smoke(gl.RunConfig(), per_class=10)
    assert c.smoke and c.epochs == 1 and c.per_class == 10 and c.test_per_class == 10


def test_paired_difference_interval_and_exact_sign_flip_p():
    from gumbel_lite.results import paired_difference

    same_sign = paired_difference([1.0, 2.0, 3.0])
    assert same_sign["mean"] == 2.0 and same_sign["std"] == 1.0 and same_sign["n"] == 3
    half = 4.302652729911275 / 3**0.5  # t(0.975, 2) · std / √3
    assert math.isclose(same_sign["ci_low"], 2 - half) and math.isclose(same_sign["ci_high"], 2 + half)
    assert same_sign["p_signflip"] == 0.25  # 2 of the 8 sign patterns are as extreme: the floor for 3 seeds
    assert same_sign["verdict"].startswith("within noise")  # the interval −0.5 .. 4.5 includes 0
    clear = paired_difference([5.0, 5.2, 4.9, 5.1])
    assert clear["verdict"].startswith("higher") and clear["p_signflip"] == 0.125
    assert paired_difference([-3.0, -3.1, -2.9])["verdict"].startswith("lower")
    mixed = paired_difference([1.0, -1.0, 0.5])
    assert mixed["p_signflip"] > 0.25 and mixed["verdict"].startswith("within noise")
    assert paired_difference([float("nan")])["verdict"] == "no run finished"
