"""Small shared pieces of the tests: the committed results folder, a tiny run, a results record."""

from pathlib import Path

from gumbel_lite.config import RunConfig

RESULTS = Path(__file__).resolve().parents[1] / "data" / "results"
TINY = dict(network="conv2", per_class=10, test_per_class=10, epochs=1, batch_size=32, track_test=False, mask_lr=2000.0)


def record(run_id, **extra):
    """A minimal results record with the default config."""
    return {
        "run_id": run_id,
        "label": "x",
        "config": RunConfig().to_dict(),
        "seed": 0,
        "smoke": False,
        "metrics": {"test_accuracy": 0.5},
        **extra,
    }
