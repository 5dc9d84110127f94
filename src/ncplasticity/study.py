"""A study as data (DESIGN §7): each experiment section holds the settings every run starts
from, ``seeds`` and ``variants`` (name -> overrides, deep-merged over those settings). Runs are
variants x seeds, with run id ``{variant}_s{seed}``; each run carries its resolved settings, so
nothing is ever parsed back out of a file name.

Validation happens here, before any job runs: the base settings and every variant's merged
settings are checked against the experiment's settings schema, whose ``interventions`` items
are built from the experiment's intervention registry. Messages name the variant and the key,
e.g. ``continual.variants.redo.interventions[0].name: 'rdo' is not one of [...]``.

Imports nothing heavy (jsonschema, yaml): the workflow uses it while planning the DAG.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import yaml

from ncplasticity.registry import Registry


class StudyError(ValueError):
    """An invalid study configuration; the message names the experiment, variant and key."""


@dataclass(frozen=True)
class ExperimentSpec:
    """What the study layer needs to know about an experiment.

    ``study_keys`` are section keys that choose runs, analyses or cluster resources (never a
    run's settings, so they cannot be overridden by a variant and changing them reruns no
    training job); ``normalise`` turns merged settings into their canonical form.
    """

    name: str
    interventions: Registry
    study_keys: tuple[str, ...]
    normalise: Callable[[dict], dict] = lambda settings: settings
    # Further registries whose entries a setting names: schema $defs name -> registry.
    registries: Mapping[str, Registry] = field(default_factory=dict)
    # Names no variant may take (they label something else in the tables).
    reserved_variants: tuple[str, ...] = ()
    # Cross-field rules the schema cannot express: resolved settings -> problems ("key: why").
    check: Callable[[dict], list[str]] = lambda settings: []


@dataclass(frozen=True)
class Run:
    experiment: str
    variant: str
    seed: int
    settings: dict = field(compare=False)

    @property
    def run_id(self) -> str:
        return run_id(self.variant, self.seed)


def run_id(variant: str, seed: int) -> str:
    return f"{variant}_s{seed}"


def typed(value):
    """``value`` with every string that YAML reads as a number, boolean or null replaced by
    that value, recursively: Snakemake passes the nested values of ``--config
    'continual={optimizer: {lr: 0.02}}'`` as strings. Names stay strings."""
    if isinstance(value, Mapping):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return parsed if parsed is None or isinstance(parsed, (bool, int, float)) else value
    return value


def deep_merge(base: Mapping, overrides: Mapping) -> dict:
    """``base`` with ``overrides`` laid over it: mappings merge key by key, anything else
    (numbers, strings, lists) replaces; an override of ``None`` removes the key. A registry
    entry (a mapping with a ``name``, e.g. the scenario) of another name replaces the base's
    whole: the old entry's parameters do not belong to the new one."""
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        old = merged.get(key)
        if value is None:
            merged.pop(key, None)
        elif (
            isinstance(value, Mapping)
            and isinstance(old, Mapping)
            and not ("name" in value and "name" in old and value["name"] != old["name"])
        ):
            merged[key] = deep_merge(old, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def canonical(value):
    """``value`` with every mapping's keys sorted, recursively: Snakemake compares a job's
    params by their text, so equal settings must print equally whatever the config's order."""
    if isinstance(value, Mapping):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def settings_hash(settings: Mapping) -> str:
    """A short stable hash of JSON-serialisable settings (key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _validator_class():
    """Draft 2020-12 that also fills in the schema's ``default`` values (the jsonschema FAQ
    recipe). jsonschema is imported here: training jobs import this module without it."""
    import jsonschema

    validator_class = jsonschema.Draft202012Validator
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _location(prefix: str, path) -> str:
    text = prefix
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def validate_settings(settings: dict, schema: dict, where: str) -> dict:
    """Validate (and fill defaults into) a copy of ``settings``; raise :class:`StudyError`
    listing every problem as ``where.key.path: message``."""
    settings = copy.deepcopy(settings)
    errors = sorted(
        _validator_class()(schema).iter_errors(settings),
        key=lambda e: [str(p) for p in e.absolute_path],
    )
    if errors:
        raise StudyError(
            "invalid configuration:\n"
            + "\n".join(f"  {_location(where, e.absolute_path)}: {e.message}" for e in errors)
        )
    return settings


def settings_schema(schema: dict, spec: ExperimentSpec) -> dict:
    """The JSON schema of one run's settings of ``spec``'s experiment, with the intervention
    items built from its registry."""
    defs = copy.deepcopy(schema["$defs"])
    defs[f"{spec.name}_intervention"] = spec.interventions.item_schema()
    for name, registry in spec.registries.items():
        defs[name] = registry.item_schema()
    return {"$defs": defs, **defs[f"{spec.name}_settings"]}


def resolve_experiment(config: Mapping, schema: dict, spec: ExperimentSpec) -> dict[str, Run]:
    """Every run of ``spec``'s experiment (run id -> :class:`Run`), settings validated and
    resolved; the section's study keys are not part of any run's settings."""
    section = config[spec.name]
    base = {k: v for k, v in section.items() if k not in (*spec.study_keys, "variants")}
    run_schema = settings_schema(schema, spec)
    validate_settings(base, run_schema, spec.name)
    runs = {}
    for variant, overrides in (section.get("variants") or {}).items():
        if overrides is None:  # an overlay file drops the variant
            continue
        where = f"{spec.name}.variants.{variant}"
        if variant in spec.reserved_variants:
            raise StudyError(f"invalid configuration: {where}: the name {variant!r} is reserved")
        if not isinstance(overrides, Mapping):
            raise StudyError(f"invalid configuration: {where}: overrides must be a mapping")
        merged = validate_settings(deep_merge(base, overrides), run_schema, where)
        settings = canonical(spec.normalise(merged))
        problems = spec.check(settings)
        if problems:
            raise StudyError(
                "invalid configuration:\n" + "\n".join(f"  {where}.{p}" for p in problems)
            )
        for seed in section["seeds"]:
            run = Run(spec.name, variant, int(seed), settings)
            runs[run.run_id] = run
    if not runs:
        raise StudyError(f"invalid configuration: {spec.name}.variants: no variant defined")
    return runs


def without(settings: Mapping, *keys: str) -> dict:
    """``settings`` without ``keys``."""
    return {k: v for k, v in settings.items() if k not in keys}
