"""The generic registry: classes by name, their parameter schema, and messages that name the
experiment and the kind of thing registered."""

from typing import ClassVar

import jsonschema
import pytest

from ncplasticity.interventions import Intervention
from ncplasticity.registry import Registry


class Toy:
    name = "toy"
    parameters: ClassVar[dict] = {"size": {"type": "integer", "default": 2}}
    required = ()

    def __init__(self, **params):
        self.params = params


def test_a_registry_builds_what_it_names_and_its_messages_name_the_kind():
    shapes = Registry("continual", kind="shape")
    shapes.register(Toy)
    (built,) = shapes.build([{"name": "toy", "size": 3}])
    assert isinstance(built, Toy) and built.params == {"size": 3}
    assert "toy" in shapes and shapes.names() == ["toy"]
    with pytest.raises(
        ValueError, match=r"continual: unknown shape 'tyo'; expected one of \['toy'\]"
    ):
        shapes["tyo"]
    other = type("Toy", (), {"name": "toy", "parameters": {}, "required": ()})
    with pytest.raises(ValueError, match="continual: shape 'toy' is registered twice"):
        shapes.register(other)
    shapes.unregister("toy")
    assert "toy" not in shapes


def test_the_item_schema_refuses_unknown_names_and_parameters():
    shapes = Registry("continual", kind="shape")
    shapes.register(Toy)
    schema = shapes.item_schema()
    jsonschema.validate({"name": "toy", "size": 1}, schema)
    for bad in ({"name": "tyo"}, {"name": "toy", "sise": 1}, {"name": "toy", "size": "big"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_an_intervention_registry_refuses_phases_and_hooks_its_loop_lacks():
    registry = Registry("toy_exp", kind="intervention", phases=("train",), hooks=("loss",))

    class WrongPhase(Intervention):
        name = "wrong_phase"
        phase = "warmup"

    class UncalledHook(Intervention):
        name = "uncalled_hook"

        def on_task_start(self, ctx):
            pass

    with pytest.raises(ValueError, match="toy_exp: intervention 'wrong_phase' has phase"):
        registry.register(WrongPhase)
    with pytest.raises(ValueError, match=r"uses \['on_task_start'\], which toy_exp training"):
        registry.register(UncalledHook)
