"""The budget of the paper-scale studies: training jobs, disk for features and checkpoints, and
GPU time of the warm-start experiment, per study and in total. A study is one or more overlays
laid over config.yaml in order (``--study a.yaml,b.yaml``); by default the paper's scale
(configs/paper.yaml) and the open questions' reference study (configs/open_questions.yaml with
configs/open_questions_reference.yaml).

Jobs and disk are exact counts from the study's resolved runs (disk: uncompressed upper bounds
of the stored arrays; HDF5 compression only lowers them). GPU time needs throughputs: pass the
measured images/s of ``benchmarks/bench_resnet_epoch.py`` on the GPU at the config's precision,
with ``--images-per-second`` (the step replayed as a CUDA graph) and
``--step-by-step-images-per-second`` (the step run kernel by kernel, as the warm-ups with a loss
term, the NC regularisers, are); without them the figure printed is an ESTIMATE from an assumed
throughput, and says so. Fine-tune epochs are bounded by ``finetune.max_epochs``;
``--finetune-epochs`` gives the expected number.

Usage: python benchmarks/paper_budget.py [--study configs/paper.yaml ...]
       [--images-per-second N --step-by-step-images-per-second M] [--finetune-epochs E]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from ncplasticity.continual.study import SPEC as CONTINUAL
from ncplasticity.data import TRAINING_EXAMPLES
from ncplasticity.study import deep_merge, resolve_experiment
from ncplasticity.warm_start import study as warm_start_study
from ncplasticity.warm_start.interventions import REGISTRY

REPO = Path(__file__).resolve().parents[1]
# Assumed when no measurement is given: a ResNet-18 training epoch on CIFAR-10 at float32 on
# one recent data-centre GPU (an assumption, not a measurement of this project).
ASSUMED_IMAGES_PER_SECOND = 10_000
BYTES = {"float16": 2, "float32": 4}


def resnet_parameters(width: int) -> int:
    from ncplasticity.networks import ResNet18

    model = ResNet18(3, 10, width)
    return sum(t.numel() for t in [*model.parameters(), *model.buffers()])


DEFAULT_STUDIES = [
    "configs/paper.yaml",
    "configs/open_questions.yaml,configs/open_questions_reference.yaml",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", action="append", help="overlays, comma-separated")
    parser.add_argument("--images-per-second", type=float)
    parser.add_argument("--step-by-step-images-per-second", type=float)
    parser.add_argument("--finetune-epochs", type=float, help="expected epochs per fine-tune")
    args = parser.parse_args()
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    total = 0.0
    for study in args.study or DEFAULT_STUDIES:
        config = yaml.safe_load((REPO / "config.yaml").read_text())
        for overlay in study.split(","):
            config = deep_merge(config, yaml.safe_load((REPO / overlay).read_text()))
        print(f"{study}:")
        total += budget(config, schema, args)
    print(f"total disk of these studies: <= {total / 1e9:.1f} GB")


def budget(config: dict, schema: dict, args) -> float:
    """Print one study's jobs, disk and GPU time; return its disk in bytes (features and
    checkpoints, uncompressed upper bound)."""
    continual = resolve_experiment(config, schema, CONTINUAL)
    feature_bytes = 0
    for run in continual.values():
        s = run.settings
        examples = s.get("examples_per_task") or TRAINING_EXAMPLES[s["dataset"]]
        probe = min(s.get("probe_size") or examples, examples)
        width = s["network"]["hidden_sizes"][-1]
        feature_bytes += s["num_tasks"] * probe * width * BYTES[s["feature_dtype"]]
    print(
        f"  continual: {len(continual)} training jobs (CPU), features <= "
        f"{feature_bytes / 1e9:.1f} GB"
    )
    if "warm_start" not in config["experiments"]:
        return feature_bytes
    runs = resolve_experiment(config, schema, warm_start_study.SPEC)
    variants = {run.variant: run.settings for run in runs.values()}
    seeds = len(config["warm_start"]["seeds"])
    warmups = sorted(set(warm_start_study.warmup_sources(variants).values()))
    fresh = set(warm_start_study.fresh_sources(variants).values())
    measured = args.images_per_second is not None
    graph_rate = args.images_per_second or ASSUMED_IMAGES_PER_SECOND
    step_rate = args.step_by_step_images_per_second or graph_rate
    checkpoint_bytes = features = warmup_images = finetune_images = finetunes = 0
    seconds = 0.0
    for name, s in variants.items():
        epochs = warm_start_study.checkpoint_epochs(s)
        train = TRAINING_EXAMPLES[s["dataset"]]
        per_finetune = args.finetune_epochs or s["finetune"]["max_epochs"]
        finetunes += len(epochs) * seeds
        finetune_images += len(epochs) * seeds * per_finetune * train
        seconds += len(epochs) * seeds * per_finetune * train / graph_rate
        if name in warmups:
            warm = round(s.get("warmup_fraction", 0.5) * train)
            warmup_images += seeds * s["warmup_epochs"] * warm
            stepwise = any(
                type(i).uses("loss")
                for i in REGISTRY.build(warm_start_study.warmup_settings(s)["interventions"])
            )
            seconds += seeds * s["warmup_epochs"] * warm / (step_rate if stepwise else graph_rate)
            features += seeds * len(epochs) * warm * 8 * s["width"] * BYTES[s["feature_dtype"]]
            checkpoint_bytes += seeds * len(epochs) * resnet_parameters(s["width"]) * 4
        if name in fresh:
            finetune_images += seeds * per_finetune * train
            seconds += seeds * per_finetune * train / graph_rate
    jobs = len(warmups) * seeds + finetunes + len(fresh) * seeds
    print(
        f"  warm_start: {jobs} GPU jobs ({len(warmups) * seeds} warm-ups, {finetunes} fine-tunes, "
        f"{len(fresh) * seeds} fresh references); features <= {features / 1e9:.1f} GB, "
        f"checkpoints {checkpoint_bytes / 1e9:.1f} GB"
    )
    if measured:
        rates = f"{graph_rate:,.0f} images/s (CUDA graph), {step_rate:,.0f} step by step, measured"
    else:
        rates = f"an assumed {graph_rate:,.0f} images/s: ESTIMATE"
    bound = "expected" if args.finetune_epochs else "upper bound (every fine-tune to max_epochs)"
    print(
        f"  warm_start GPU time: {warmup_images / 1e6:.0f}M warm-up + {finetune_images / 1e6:.0f}M "
        f"fine-tune image-epochs ({bound}) at {rates}: {seconds / 3600:,.0f} GPU-hours of "
        "training steps (evaluation and feature dumps not counted)"
    )
    return feature_bytes + features + checkpoint_bytes


if __name__ == "__main__":
    main()
