"""The registry every pluggable kind uses (interventions, scenarios): classes by name, each
with a ``name``, a JSON schema of its parameters (``parameters``, ``required``) and whatever
its kind adds. A registry builds instances from a run's settings and gives the JSON schema the
study validates them with, so a misspelt name or parameter fails before any job runs; its
messages name the experiment and the kind, e.g. ``continual: unknown scenario 'x'``.

Imports nothing heavy: the workflow reads the registries while planning.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from ncplasticity.interventions import HOOKS


class Registry:
    """The registered classes of one kind (``kind``: "intervention", "scenario") of one
    experiment, by name. ``phases`` and ``hooks``, for interventions, are the phases they may
    act in and the hooks the experiment's training loop calls: a class outside them is refused
    when it is registered, never silently ignored."""

    def __init__(
        self,
        experiment: str,
        *,
        kind: str,
        phases: tuple[str, ...] = (),
        hooks: tuple[str, ...] = (),
    ):
        self.experiment = experiment
        self.kind = kind
        self.phases = phases
        self.hooks = hooks
        self._classes: dict[str, type] = {}

    def _refuse(self, name: str, problem: str) -> ValueError:
        return ValueError(f"{self.experiment}: {self.kind} {name!r} {problem}")

    def register(self, cls: type) -> type:
        """Class decorator: add ``cls`` under ``cls.name``."""
        if cls.name in self._classes and self._classes[cls.name] is not cls:
            raise self._refuse(cls.name, "is registered twice")
        if self.phases and cls.phase not in self.phases:
            raise self._refuse(
                cls.name, f"has phase {cls.phase!r}; set `phase` to one of {self.phases}"
            )
        uncalled = [h for h in HOOKS if self.hooks and h not in self.hooks and cls.uses(h)]
        if uncalled:
            raise self._refuse(
                cls.name, f"uses {uncalled}, which {self.experiment} training never calls"
            )
        self._classes[cls.name] = cls
        return cls

    def unregister(self, name: str) -> None:
        self._classes.pop(name, None)

    def __contains__(self, name: str) -> bool:
        return name in self._classes

    def __getitem__(self, name: str) -> type:
        try:
            return self._classes[name]
        except KeyError:
            raise ValueError(
                f"{self.experiment}: unknown {self.kind} {name!r}; expected one of {self.names()}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._classes)

    def item_schema(self) -> dict:
        """JSON schema of one entry naming a registered class: ``name`` from the registry, then
        that class's parameters (unknown parameters are errors)."""
        cases = []
        for name, cls in sorted(self._classes.items()):
            properties = {"name": {"const": name}, **copy.deepcopy(cls.parameters)}
            cases.append(
                {
                    "if": {"properties": {"name": {"const": name}}},
                    "then": {
                        "properties": properties,
                        "required": ["name", *cls.required],
                        "additionalProperties": False,
                    },
                }
            )
        return {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"enum": self.names()}},
            "allOf": cases,
        }

    def build(self, specs: Iterable[Mapping]) -> list[Any]:
        """Instances for a list of entries (each ``{name, **parameters}``)."""
        built = []
        for spec in specs:
            params = {k: v for k, v in spec.items() if k != "name"}
            built.append(self[spec["name"]](**params))
        return built

    def in_phase(self, specs: Iterable[Mapping], phase: str) -> list[dict]:
        """The entries of ``specs`` whose class acts in ``phase``."""
        return [dict(spec) for spec in specs if self[spec["name"]].phase == phase]
