"""Warm starting (DESIGN §3): warm-up on half the training set, then fine-tune each checkpoint.

Modules (the template every experiment follows): ``study`` (the settings each job is given, the
checkpoint epochs, shared warm-ups; torch-free), ``interventions`` (the registry), ``loop`` (the
training loop and its evaluation), ``job`` (one run end to end: the warm-up and fine-tune jobs,
resumable), ``tables`` (per-run tables, sliding correlations, variant summary), ``figures``
(the figures drawn from them), ``outputs`` (the file, figure and table names the rules use;
imports nothing heavy).
"""

EXPERIMENT = "warm_start"
