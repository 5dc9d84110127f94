"""Which runs stand for the paper's: chosen from the study's resolved settings (never from
variant names), with a one-line description of each chosen variant's configuration. Plain data
in and out (no pandas, no torch): the workflow calls it while planning the DAG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# The paper's continual protocol (DESIGN §3): settings path -> value. A variant that differs
# elsewhere (dataset size, learning rate, first task) is still the paper's experiment at
# another scale; one that differs here is another experiment.
CONTINUAL_PROTOCOL = {
    ("scenario", "name"): "permuted_pixels",
    ("scenario", "fraction"): 1.0,
    ("interventions",): [],
    ("schedule", "epochs_per_task"): 1,
    ("optimizer", "name"): "sgd",
    ("optimizer", "batch_size"): 1,
    ("network", "hidden_sizes"): [100, 100, 100],
    ("network", "layer_norm"): False,
}
# Warm-start roles: the interventions (by name, exactly) of the variant that plays each.
WARM_START_ROLES = {"plain": [], "shrink_perturb": ["shrink_perturb"], "nc_reg": ["nc_reg"]}
# The paper's warm-start setting (DESIGN §3): (label, settings key, the paper's value). A variant
# that differs in any is the paper's experiment at another scale; the reproduction table names
# each difference beside the row, so that no number is read as the paper's own.
WARM_START_PAPER = (
    ("dataset", "dataset", "cifar10"),
    ("width", "width", 64),  # ResNet-18 at full width
    ("epochs", "warmup_epochs", 350),
)
# Its reference values are the means of this many seeds (7-11).
WARM_START_PAPER_SEEDS = 5


def _get(settings: Mapping, path: Sequence[str]):
    for key in path:
        if not isinstance(settings, Mapping) or key not in settings:
            return None
        settings = settings[key]
    return settings


def follows_protocol(settings: Mapping) -> bool:
    return all(_get(settings, path) == value for path, value in CONTINUAL_PROTOCOL.items())


def _seeds(seeds) -> str:
    return ",".join(str(seed) for seed in seeds)


def _interventions(settings: Mapping) -> str:
    parts = []
    for entry in settings.get("interventions", []):
        args = ", ".join(f"{k}={v}" for k, v in entry.items() if k != "name")
        parts.append(f"{entry['name']}({args})")
    return "; interventions " + ", ".join(parts) if parts else ""


def describe_continual(
    variant: str, settings: Mapping, analysis_tasks: int, seeds: Sequence[int]
) -> str:
    first = settings["schedule"]["first_task"]
    if "nc1_threshold" in first:
        first_task = f"until NC1 < {first['nc1_threshold']} (at most {first['max_epochs']} epochs)"
    else:
        first_task = f"{first['epochs']} epoch(s)"
    examples = settings.get("examples_per_task") or "all"
    tasks = min(analysis_tasks, settings["num_tasks"])
    return (
        f"continual/{variant}: {settings['dataset']}, {examples} examples a task, lr "
        f"{settings['optimizer']['lr']}, first task {first_task}, tasks 0-{tasks - 1} of "
        f"{settings['num_tasks']}, seeds {_seeds(seeds)}{_interventions(settings)}"
    )


def describe_warm_start(variant: str, settings: Mapping, seeds: Sequence[int]) -> str:
    return (
        f"warm_start/{variant}: {settings['dataset']}, ResNet-18 width {settings['width']}, "
        f"lr {settings['lr']}, {settings['warmup_epochs']} warm-up epochs (checkpoint every "
        f"{settings['checkpoint_every']}), fine-tuning <= {settings['finetune']['max_epochs']} "
        f"epochs, seeds {_seeds(seeds)}{_interventions(settings)}"
    )


def warm_start_differences(settings: Mapping, seeds: Sequence[int]) -> list[str]:
    """How a warm-start variant's setting differs from the paper's, one phrase each (e.g.
    ``width 4 (paper 64)``); empty for the paper's own."""
    ours = [(label, settings[key], paper) for label, key, paper in WARM_START_PAPER]
    ours.append(("seeds", len(seeds), WARM_START_PAPER_SEEDS))
    return [f"{label} {value} (paper {paper})" for label, value, paper in ours if value != paper]


def continual_choice(
    variants: Mapping[str, Mapping],
    sweeps: Sequence[Sequence[str]],
    analysis_tasks: int,
    seeds: Sequence[int],
) -> dict:
    """The paper's run: the first variant (config order) that follows the protocol with a
    one-epoch first task, else the first that follows it at all (None when none does); the
    sweep: the variants of its first-task sweep group when that has two or more (else [])."""
    protocol = [name for name, settings in variants.items() if follows_protocol(settings)]
    one_epoch = [
        name for name in protocol if variants[name]["schedule"]["first_task"].get("epochs") == 1
    ]
    chosen = (one_epoch or protocol or [None])[0]
    sweep = next((list(g) for g in sweeps if chosen in g and len(g) > 1), [])
    return {
        "variant": chosen,
        "sweep": sweep,
        "analysis_tasks": analysis_tasks,
        "seeds": list(seeds),
        "config": {
            name: describe_continual(name, settings, analysis_tasks, seeds)
            for name, settings in variants.items()
        },
    }


def warm_start_choice(
    variants: Mapping[str, Mapping],
    warmup_sources: Mapping[str, str],
    window: int,
    seeds: Sequence[int],
) -> dict:
    """Per role of :data:`WARM_START_ROLES`, the first variant (config order) whose
    interventions are exactly the role's (None when none is); which warm-up each variant
    fine-tunes; the sliding window; and how each variant's setting differs from the paper's."""
    roles = {
        role: next(
            (
                name
                for name, settings in variants.items()
                if [i["name"] for i in settings.get("interventions", [])] == names
            ),
            None,
        )
        for role, names in WARM_START_ROLES.items()
    }
    return {
        **roles,
        "warmups": dict(warmup_sources),
        "window": window,
        "seeds": list(seeds),
        "config": {
            name: describe_warm_start(name, settings, seeds) for name, settings in variants.items()
        },
        "differences": {
            name: warm_start_differences(settings, seeds) for name, settings in variants.items()
        },
    }
