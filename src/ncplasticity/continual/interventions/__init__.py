"""The continual intervention registry (hooks: :mod:`ncplasticity.interventions`; the
definitions and defaults are DESIGN §3b's). The regularisers (``l2``, ``l2_init``,
``shrink_perturb``, ``nc_dial``) live in :mod:`.regularizers`, the unit resets (``redo``,
``cbp``) in :mod:`.unit_resets`; importing this package registers them all.

Each intervention that acts on every step has two forms of one update in its class: the plain
PyTorch hooks (``loss``, ``after_step``, optimiser options) that the autograd loop runs — for
larger batches, and as the reference the compiled form is checked against step by step — and
``compiled_form``, a :class:`ncplasticity.continual.compiled.CompiledForm` whose numba functions
the compiled batch-1 loop calls. Random draws (fresh weights, noise) come from the
counter-based functions of :mod:`ncplasticity.continual.compiled.draws` in both forms.
Interventions that act only at task boundaries run as hooks around either loop.

Every intervention says what it did in its task's log row (``task_log``). torch is imported
inside the hooks: the workflow reads this registry while planning.
"""

# Importing the submodules registers their classes.
from ncplasticity.continual.interventions import nc_target as nc_target
from ncplasticity.continual.interventions import regularizers, unit_resets
from ncplasticity.continual.interventions._registry import REGISTRY

__all__ = ["REGISTRY", "regularizers", "unit_resets"]
