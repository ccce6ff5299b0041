"""A full disk never loses a run: a failed append leaves the results file as it was, a failed
checkpoint save names its file, and neither reports success. Tested for real under ``ulimit -f``."""

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")


def limited(code: str, limit_bytes: int, cwd) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python whose files may not grow beyond ``limit_bytes`` (SIGXFSZ is ignored by Python)."""
    prelude = f"import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, ({limit_bytes}, {limit_bytes}))\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_a_full_results_file_is_left_as_it_was_and_the_append_fails_loudly(tmp_path):
    out = tmp_path / "r.jsonl"
    first = json.dumps({"run_id": "a", "config": {}, "metrics": {}}) + "\n"
    out.write_text(first)
    result = limited(
        f"""
        from gumbel_lite.runner import append_jsonl, ResultsWriteError
        try:
            append_jsonl({str(out)!r}, {{"run_id": "b", "config": {{}}, "metrics": {{}}, "history": {{"x": "y" * 5000}}}})
        except ResultsWriteError as e:
            print("refused:", e)
        else:
            print("written")
        """,
        limit_bytes=len(first) + 1000,
        cwd=tmp_path,
    )
    assert "refused:" in result.stdout, result.stderr
    assert str(out) in result.stdout and "run b" in result.stdout and "checkpoint is kept" in result.stdout
    assert out.read_text() == first  # no torn line left behind


def test_a_checkpoint_that_does_not_fit_names_its_file(tmp_path, synthetic_root):
    result = limited(
        f"""
        import torch, gumbel_lite as gl
        from gumbel_lite.train import CheckpointError
        torch.manual_seed(0)
        net = gl.mask_model(gl.models.conv_net((16,)), method="aslp", rescale="smart")
        data = gl.CifarData(root={str(synthetic_root)!r}, batch_size=32, seed=0)
        try:
            gl.train(net, data, epochs=1, checkpoint={str(tmp_path / "run.pt")!r}, progress=False)
        except CheckpointError as e:
            print("refused:", e)
        """,
        limit_bytes=50_000,
        cwd=tmp_path,
    )
    assert "refused: checkpoint" in result.stdout, result.stderr[-2000:]
    assert str(tmp_path / "run.pt") in result.stdout and "disk full" in result.stdout
    assert not list(tmp_path.glob("run.pt*"))  # no half-written temporary left


def test_the_cli_exits_non_zero_and_keeps_the_checkpoint_when_the_record_does_not_fit(tmp_path, synthetic_root, monkeypatch):
    from gumbel_lite import runner
    from gumbel_lite.cli import main

    def full(path, record, skip_if_present=False):
        raise runner.ResultsWriteError(f"the record of run {record['run_id']} could not be appended to {path} (No space left on device)")

    monkeypatch.setattr(runner, "append_jsonl", full)
    out, checkpoints = tmp_path / "r.jsonl", tmp_path / "ck"
    args = ["train", "--network", "conv2", "--per-class", "5", "--test-per-class", "5", "--epochs", "1", "--batch-size", "16"]
    code = main([*args, "--data-root", str(synthetic_root), "--out", str(out), "--checkpoint-dir", str(checkpoints), "--no-progress"])
    assert code == 1
    assert len(list(checkpoints.glob("*.pt"))) == 1  # the trained run is not lost
