"""The compiled batch-1 step of the continual MLP: a sealed wing.

Batch-1 training through PyTorch autograd spends hundreds of microseconds a step on framework
overhead for a network that needs ~0.2 MFLOP; here a whole stretch of steps runs inside numba
over one flat float32 parameter vector. Its entry point is :func:`train_steps` (with
:func:`unsupported_reason`, which says when it cannot run an update). An intervention takes
part by returning a :class:`CompiledForm` from its ``compiled_form`` hook: numba functions
written against :mod:`.units` (views of the network) and :mod:`.draws` (random draws its plain
PyTorch form repeats), never against the wing's arrays or slots. :func:`task_inputs` gathers a
task's inputs in its pixel order for every other use.
"""

from ncplasticity.continual.compiled import draws, units
from ncplasticity.continual.compiled.form import CompiledForm
from ncplasticity.continual.compiled.forward import task_inputs

__all__ = ["CompiledForm", "draws", "task_inputs", "train_steps", "units", "unsupported_reason"]


def __getattr__(name: str):
    # The driver imports torch; interventions import this package while the workflow plans.
    if name in ("train_steps", "unsupported_reason"):
        from ncplasticity.continual.compiled import driver

        return getattr(driver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
