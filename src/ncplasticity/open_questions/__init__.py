"""The paper's open questions (DESIGN §3c) answered from the continual runs' tables.

- :mod:`.conditions`: what each variant changes, read from its resolved settings (never its
  name): the reference, the question families, the held-out groups, the dial strength.
- :mod:`.panel`: the per-run tables as one task-level panel (PL, lagged measures, steps).
- :mod:`.within`: within-run r(NC1, PL), partial on steps, first-differenced; per seed.
- :mod:`.models`: mixed-effects regressions (statsmodels MixedLM, random intercept per run).
- :mod:`.effects`: condition means, dose-response, across-condition correlation, similarity.
- :mod:`.predictors`: which measure predicts the next task's PL, in and out of sample.
- :mod:`.answers`: the answers table (TSV and Markdown), each reading generated from numbers.
- :mod:`.figures`: one figure per question.

numpy, pandas, scipy and statsmodels only; no torch.
"""
