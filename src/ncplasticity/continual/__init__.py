"""Continual learning (DESIGN §3, §3b): a sequence of tasks, features after each task, NC
metrics and plasticity measures per task. The paper's Permuted MNIST is the default scenario.

Modules: ``study`` (settings schema and canonical form, torch-free), ``scenarios`` (what each
task is: the scenario registry, the task's examples, epochs and probe), ``interventions`` (the
registry), ``loop`` (one epoch of training: the compiled batch-1 step or the autograd loop),
``job`` (one run end to end, resumable), ``measures`` (what is measured after each task),
``tables`` (per-run tables, correlations, variant summary; no torch or matplotlib),
``figures``, ``outputs`` (the names of the tables and figures the rules write; light) and the
compiled wing ``compiled``.
"""

EXPERIMENT = "continual"
