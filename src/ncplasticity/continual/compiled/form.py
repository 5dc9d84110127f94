"""The typed configuration an intervention returns from its ``compiled_form`` hook: what it adds
to the compiled batch-1 step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CompiledForm:
    """What one intervention adds to the compiled step (all optional).

    * ``state``: a tuple of numpy arrays the functions below read and update in place; the
      intervention keeps them (e.g. to log a count at the task's end, or to save a resume).
    * ``feature_gradient``: an ``@njit`` function ``(state, h, label, d_h) -> None`` at module
      level, called in the backward pass with the step's penultimate features ``h`` (post-ReLU,
      float32) and ``d_h``, the loss gradient with respect to them (zero where a unit is
      inactive): it adds its term's gradient to ``d_h`` where ``h`` is nonzero.
    * ``after_step``: an ``@njit`` function ``(state, net, acts, label, seed, step) -> None`` at
      module level, called after the optimiser's step with the step's activations before the
      update; :mod:`ncplasticity.continual.compiled.units` reads and changes the network
      through ``net``, :mod:`ncplasticity.continual.compiled.draws` gives random draws that the
      plain PyTorch form can repeat.
    * ``decay_to_initial``: λ of a loss term λ‖θ − θ₀‖² (θ₀ the run's initial parameters),
      folded into the optimiser's pass over the weights.

    The step loop is compiled with the functions built in and cached by the sources of this
    wing and of the functions' modules (:mod:`.specialise`): a numba function they call must
    live in one of those, or a change to it would not reach the cached loop.
    """

    state: tuple = ()
    feature_gradient: Callable | None = None
    after_step: Callable | None = None
    decay_to_initial: float = 0.0

    @property
    def has_functions(self) -> bool:
        return self.feature_gradient is not None or self.after_step is not None
