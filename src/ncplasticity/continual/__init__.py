"""Continual learning (DESIGN §3, §3b): a sequence of tasks, features after each task, NC
metrics and plasticity measures per task. The paper's Permuted MNIST is the default scenario.

Modules: ``study`` (settings, torch-free), ``scenarios`` and ``interventions`` (registries),
``online_sgd`` (the compiled batch-1 step and the autograd loop), ``train`` (the job),
``analysis`` (tables, correlations, figures).
"""

EXPERIMENT = "continual"
