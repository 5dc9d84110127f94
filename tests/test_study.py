"""The study grammar: deep merge, validation naming variant and key, registries, run ids."""

from pathlib import Path

import pytest
import yaml

from ncplasticity import metrics
from ncplasticity.continual.study import SPEC as CONTINUAL
from ncplasticity.continual.study import sweep_groups
from ncplasticity.metrics import Metric
from ncplasticity.plots import series_colors
from ncplasticity.study import (
    StudyError,
    deep_merge,
    resolve_experiment,
    settings_hash,
    typed,
)
from ncplasticity.warm_start import study as warm_start_study

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())


@pytest.fixture
def config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_deep_merge_merges_mappings_replaces_the_rest_and_null_removes():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2, "c": 3}
    merged = deep_merge(base, {"a": {"y": [3], "z": 4}, "b": None, "c": {"k": 1}})
    assert merged == {"a": {"x": 1, "y": [3], "z": 4}, "c": {"k": 1}}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 2, "c": 3}  # untouched


def test_typed_gives_nested_config_strings_their_yaml_types():
    given = {"continual": {"optimizer": {"lr": "0.02", "name": "sgd"}, "seeds": ["1", "2"]}}
    expected = {"continual": {"optimizer": {"lr": 0.02, "name": "sgd"}, "seeds": [1, 2]}}
    assert typed(given) == expected
    assert typed({"a": "null", "b": "true", "c": "mnist5k", "d": "{x: 1}"}) == {
        "a": None,
        "b": True,
        "c": "mnist5k",
        "d": "{x: 1}",
    }


def test_deep_merge_replaces_a_registry_entry_of_another_name():
    base = {"scenario": {"name": "permuted_pixels", "fraction": 1.0}}
    assert deep_merge(base, {"scenario": {"name": "permuted_labels"}}) == {
        "scenario": {"name": "permuted_labels"}
    }
    same = deep_merge(base, {"scenario": {"name": "permuted_pixels", "fraction": 0.5}})
    assert same == {"scenario": {"name": "permuted_pixels", "fraction": 0.5}}


def test_runs_are_variants_times_seeds_with_resolved_settings(config):
    runs = resolve_experiment(config, SCHEMA, CONTINUAL)
    assert list(runs) == [f"{v}_s{s}" for v in ("e1", "nc0.25", "nc0.22") for s in (1, 2, 3)]
    run = runs["nc0.22_s2"]
    assert (run.variant, run.seed, run.run_id) == ("nc0.22", 2, "nc0.22_s2")
    # The threshold replaces the base's `epochs`; study keys are no settings.
    assert run.settings["schedule"]["first_task"] == {"nc1_threshold": 0.22, "max_epochs": 20}
    assert runs["e1_s1"].settings["schedule"]["first_task"] == {"epochs": 1}
    assert not {"seeds", "variants", "analysis_tasks", "threads"} & set(run.settings)
    # Defaults of the schema are filled in.
    assert runs["e1_s1"].settings["network"]["layer_norm"] is False


def test_a_variant_set_to_null_is_dropped(config):
    config["continual"]["variants"]["nc0.22"] = None
    assert {run.variant for run in resolve_experiment(config, SCHEMA, CONTINUAL).values()} == {
        "e1",
        "nc0.25",
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"interventions": [{"name": "rdo"}]}, "continual.variants.v.interventions[0].name: 'rdo'"),
        ({"optimizer": {"lr": "fast"}}, "continual.variants.v.optimizer.lr: 'fast' is not of"),
        ({"optimizer": {"learning_rate": 1}}, "continual.variants.v.optimizer: Additional"),
        (
            {"interventions": [{"name": "l2", "weight_decay": -1}]},
            "continual.variants.v.interventions[0].weight_decay: -1 is less than",
        ),
        ({"scenario": {"name": "rotated"}}, "continual.variants.v.scenario.name: 'rotated'"),
    ],
)
def test_invalid_variant_names_variant_and_key(config, overrides, message):
    config["continual"]["variants"]["v"] = overrides
    with pytest.raises(StudyError) as error:
        resolve_experiment(config, SCHEMA, CONTINUAL)
    assert message in str(error.value)


def test_invalid_base_setting_names_the_section(config):
    config["continual"]["num_tasks"] = 0
    with pytest.raises(StudyError, match=r"continual\.num_tasks: 0 is less than the minimum"):
        resolve_experiment(config, SCHEMA, CONTINUAL)


def test_settings_hash_ignores_key_order():
    assert settings_hash({"a": 1, "b": [1, 2]}) == settings_hash({"b": [1, 2], "a": 1})
    assert settings_hash({"a": 1}) != settings_hash({"a": 2})


def test_warm_start_variants_share_a_warmup_when_its_settings_agree(config):
    runs = resolve_experiment(config, SCHEMA, warm_start_study.SPEC)
    variants = {run.variant: run.settings for run in runs.values()}
    sources = warm_start_study.warmup_sources(variants)
    assert sources == {
        "plain": "plain",
        "nc_reg": "nc_reg",
        "nc_reg_stable": "nc_reg_stable",
        "shrink_perturb": "plain",
        "l2": "l2",
    }
    finetune = warm_start_study.finetune_settings(variants["shrink_perturb"])
    assert [i["name"] for i in finetune["interventions"]] == ["shrink_perturb"]
    assert "warmup_epochs" not in finetune and "finetune" in finetune
    assert warm_start_study.warmup_settings(variants["nc_reg"])["interventions"][0]["lam"] == 0.05


def test_a_catalogued_metric_reaches_every_consumer(monkeypatch):
    """Adding a metric is one catalogue entry: correlation tables and figures select it."""
    toy = Metric("toy_measure", "toy", "plasticity", 1, plotted=True, compute=lambda p: 1.0)
    monkeypatch.setattr(metrics, "CATALOGUE", (*metrics.CATALOGUE, toy))
    assert toy in metrics.select(correlated=True)
    assert toy in metrics.select(group="plasticity", plotted=True, computed=True)
    assert list(metrics.registry())[-1] == "toy_measure"


def test_variant_colours_are_distinct_and_do_not_depend_on_order():
    names = ["plain", "nc_reg", "nc_reg_stable", "shrink_perturb", "l2", "e1", "nc0.25", "nc0.22"]
    colors = series_colors(names)
    assert len(set(colors.values())) == len(names)
    assert series_colors(reversed(names)) == colors
    # Adding a variant keeps the others' colours unless it takes their slot.
    assert series_colors([*names, "redo"])["plain"] == colors["plain"]


def test_reserved_and_dataset_dependent_settings_are_errors(config):
    config["warm_start"]["variants"]["fresh"] = {}
    with pytest.raises(StudyError, match=r"warm_start\.variants\.fresh: the name 'fresh'"):
        resolve_experiment(config, SCHEMA, warm_start_study.SPEC)
    config["continual"]["variants"]["big"] = {"examples_per_task": 5000}
    with pytest.raises(StudyError, match=r"variants\.big\.examples_per_task: 5000 exceeds"):
        resolve_experiment(config, SCHEMA, CONTINUAL)
    config["continual"]["variants"]["big"] = {"probe_size": 5}
    with pytest.raises(StudyError, match=r"variants\.big\.probe_size: 5 is smaller"):
        resolve_experiment(config, SCHEMA, CONTINUAL)


def test_fresh_references_are_shared_unless_their_settings_differ(config):
    config["warm_start"]["variants"]["fast"] = {"lr": 0.1}
    runs = resolve_experiment(config, SCHEMA, warm_start_study.SPEC)
    variants = {run.variant: run.settings for run in runs.values()}
    fresh = warm_start_study.fresh_sources(variants)
    assert fresh["fast"] == "fast"
    assert {fresh[v] for v in variants if v != "fast"} == {"plain"}


def test_sweep_groups_hold_variants_that_differ_only_in_the_first_task(config):
    config["continual"]["variants"]["wide"] = {"network": {"hidden_sizes": [400]}}
    runs = resolve_experiment(config, SCHEMA, CONTINUAL)
    groups = sweep_groups({run.variant: run.settings for run in runs.values()})
    assert groups == [["e1", "nc0.25", "nc0.22"], ["wide"]]


def test_settings_do_not_depend_on_the_config_key_order(config):
    reordered = yaml.safe_load((REPO / "config.yaml").read_text())
    reordered["continual"] = dict(reversed(list(reordered["continual"].items())))
    a = resolve_experiment(config, SCHEMA, CONTINUAL)["e1_s1"].settings
    b = resolve_experiment(reordered, SCHEMA, CONTINUAL)["e1_s1"].settings
    assert repr(a) == repr(b)
