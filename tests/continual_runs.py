"""Continual training runs for tests: train one run into a directory, read its snapshots."""

from ncplasticity.continual.job import train_run
from ncplasticity.features import FeatureReader


def train(dataset, out, run_id, run_settings, seed=1):
    """Train ``run_settings`` as ``run_id`` into ``out``; (features path, log path)."""
    train_run(
        run_settings,
        seed,
        run_id,
        dataset,
        out / f"{run_id}.h5",
        out / f"{run_id}.tsv",
        out / "partial" / run_id,
        device="cpu",
    )
    return out / f"{run_id}.h5", out / f"{run_id}.tsv"


def snapshots(path):
    """[(info, (features, labels, weight, bias))] of every snapshot of a feature store."""
    with FeatureReader(path) as reader:
        return [(info, reader.read(info.name)) for info in reader.snapshots()]
