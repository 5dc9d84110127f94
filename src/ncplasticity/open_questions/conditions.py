"""What each variant of a study changes, from its resolved settings (never from its name).

The *reference* is the variant whose settings differ from all others' in the fewest places
(the centre of a one-change-at-a-time design: plain Permuted MNIST); ties go to the first
variant. Every other variant is described by the settings in which it differs from the
reference, and belongs to the question families those differences allow:

- ``dose``: only its interventions differ and they are one ``nc_target`` (its ``target`` τ is
  the dose, the instrument of the causal estimate; the reference, without it, is the natural
  NC1 the doses are set around);
- ``duration``: only ``schedule.epochs_per_task`` differs;
- ``intervention``: only interventions (not ``nc_target``) and/or LayerNorm differ;
- ``architecture``: only width, depth, the optimiser and/or LayerNorm differ;
- ``similarity``: only the scenario differs (task similarity and the kind of shift: each
  scenario's ``shift`` from the scenario registry).

The reference belongs to every family (it is each family's baseline point). Each variant's
held-out *group* (for leave-one-group-out) names what it changes without the parameter values
of interventions, so all doses are one group and both forms of shrink & perturb another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pandas as pd

from ncplasticity.continual.scenarios import SCENARIOS

FAMILIES = ("dose", "duration", "intervention", "architecture", "similarity")
DOSE = "nc_target"
REFERENCE = "reference"

_ARCHITECTURE = {"network.width", "network.depth", "network.layer_norm"}
_INTERVENTION = {"interventions", "network.layer_norm"}
_SCENARIO = {"scenario.name", "scenario.fraction", "scenario.parameters"}
CONDITION_COLUMNS = [
    "variant",
    "reference",
    "families",
    "group",
    "changes",
    "target",
    "width",
    "depth",
    "layer_norm",
    "optimizer",
    "scenario",
    "fraction",
    "shift",
    "confound",
    "epochs_per_task",
    "interventions",
]


def facts(settings: Mapping) -> dict:
    """The settings that define a condition, flattened (``section.key`` -> value)."""
    hidden = list(settings["network"]["hidden_sizes"])
    scenario = settings["scenario"]
    flat = {
        "network.width": hidden[0] if len(set(hidden)) == 1 else "x".join(map(str, hidden)),
        "network.depth": len(hidden),
        "network.layer_norm": bool(settings["network"].get("layer_norm", False)),
        "interventions": json.dumps(settings.get("interventions", []), sort_keys=True),
        "scenario.name": scenario["name"],
        "scenario.fraction": scenario.get("fraction"),
        "scenario.parameters": json.dumps(
            {k: v for k, v in scenario.items() if k not in ("name", "fraction")}, sort_keys=True
        ),
        "schedule.epochs_per_task": json.dumps(settings["schedule"].get("epochs_per_task", 1)),
        "schedule.first_task": json.dumps(settings["schedule"]["first_task"], sort_keys=True),
    }
    for key, value in settings.get("optimizer", {}).items():
        flat[f"optimizer.{key}"] = json.dumps(value)
    for key in ("dataset", "examples_per_task", "num_tasks", "probe_size"):
        flat[key] = settings.get(key)
    return flat


def shift(scenario: Mapping) -> tuple[str, str]:
    """The kind of shift between tasks of a scenario entry and why PL does not compare its
    tasks ("" where it does): its registered class's ``shift`` and ``confound``."""
    built = SCENARIOS.build([scenario])[0]
    return built.shift, built.confound


def _differences(a: Mapping, b: Mapping) -> set[str]:
    return {key for key in set(a) | set(b) if a.get(key) != b.get(key)}


def dose_target(settings: Mapping) -> float:
    """The ``nc_target`` target τ of ``settings`` (NaN without one)."""
    targets = [i["target"] for i in settings.get("interventions", []) if i["name"] == DOSE]
    return float(targets[0]) if len(targets) == 1 else float("nan")


def _names(settings: Mapping) -> list[str]:
    return [i["name"] for i in settings.get("interventions", [])]


def describe(variant_settings: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per variant (in the given order): :data:`CONDITION_COLUMNS`. ``families`` is a
    comma-separated list of :data:`FAMILIES` (all of them for the reference, may be empty),
    ``changes`` the differing settings (``;``-separated)."""
    if not variant_settings:
        raise ValueError("describe: no variants")
    flat = {variant: facts(settings) for variant, settings in variant_settings.items()}
    variants = list(flat)
    distance = {v: sum(len(_differences(flat[v], flat[w])) for w in variants) for v in variants}
    reference = min(variants, key=lambda v: (distance[v], variants.index(v)))
    rows = []
    for variant, settings in variant_settings.items():
        changed = _differences(flat[variant], flat[reference])
        is_reference = variant == reference
        kind_of_shift, confound = shift(settings["scenario"])
        rows.append(
            {
                "variant": variant,
                "reference": is_reference,
                "families": ",".join(
                    FAMILIES
                    if is_reference
                    else _families(changed, settings, variant_settings[reference])
                ),
                "group": REFERENCE if is_reference else _group(changed, settings),
                "changes": ";".join(sorted(changed)),
                "target": dose_target(settings),
                "width": flat[variant]["network.width"],
                "depth": flat[variant]["network.depth"],
                "layer_norm": flat[variant]["network.layer_norm"],
                "optimizer": settings.get("optimizer", {}).get("name", "sgd"),
                "scenario": settings["scenario"]["name"],
                "fraction": settings["scenario"].get("fraction"),
                "shift": kind_of_shift,
                "confound": confound,
                "epochs_per_task": flat[variant]["schedule.epochs_per_task"],
                "interventions": "+".join(_names(settings)) or "none",
            }
        )
    return pd.DataFrame(rows, columns=CONDITION_COLUMNS)


def _families(changed: set[str], settings: Mapping, reference: Mapping) -> list[str]:
    families = []
    names = _names(settings)
    optimizer = {key for key in changed if key.startswith("optimizer.")}
    if changed == {"interventions"} and names == [DOSE] and DOSE not in _names(reference):
        families.append("dose")
    if changed == {"schedule.epochs_per_task"}:
        families.append("duration")
    if changed and changed <= _INTERVENTION and names != [DOSE]:
        families.append("intervention")
    if changed and changed <= _ARCHITECTURE | optimizer:
        families.append("architecture")
    if changed and changed <= _SCENARIO:
        families.append("similarity")
    return families


def _group(changed: set[str], settings: Mapping) -> str:
    parts = []
    for key in sorted(changed):
        if key == "interventions":
            parts.append("interventions=" + ("+".join(sorted(set(_names(settings)))) or "none"))
        elif key == "scenario.name":
            parts.append(f"scenario={settings['scenario']['name']}")
        elif key in ("scenario.fraction", "scenario.parameters") and "scenario.name" in changed:
            continue
        elif key.startswith("optimizer."):
            if "optimizer" not in parts:
                parts.append("optimizer")
        else:
            parts.append(key)
    return " & ".join(parts) or "same settings"


def confounds(conditions: pd.DataFrame) -> pd.Series:
    """Variant -> its scenario's confound ("" where none; a table read back from TSV holds
    NaN for an empty one)."""
    return conditions.set_index("variant")["confound"].astype("string").fillna("")


def family(conditions: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of ``conditions`` in family ``name`` (the reference included)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; expected one of {FAMILIES}")
    listed = conditions["families"].fillna("").astype(str).str.split(",")
    return conditions[listed.apply(lambda families: name in families)]
