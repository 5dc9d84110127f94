"""Warm starting (DESIGN §3): warm-up on half the training set, then fine-tune each checkpoint.

Modules: ``study`` (settings views, torch-free), ``interventions`` (the registry),
``training`` (the one training loop), ``run`` (the warm-up and fine-tune jobs), ``analysis``
(tables, correlations, figures).
"""

EXPERIMENT = "warm_start"
