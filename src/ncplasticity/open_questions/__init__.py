"""The paper's open questions (DESIGN §3c) answered from the continual runs' tables.

- :mod:`.conditions`: what each variant changes, read from its resolved settings (never its
  name): the reference, the question families, the held-out groups, the dial strength.
- :mod:`.panel`: the per-run tables as one task-level panel (PL, lagged measures, steps).
- :mod:`.pooling`: which runs enter pooled analyses (confounded scenarios and degenerate runs
  are analysed on their own).
- :mod:`.inference`: the lead–lag estimate with its placebo and the predictor tournament,
  calibrated on simulated panels (DESIGN §3d).
- :mod:`.within`: within-run r(NC1, PL), partial on steps, first-differenced; per seed.
- :mod:`.panel_models`: PL on NC1 with the lagged outcome, run-clustered errors, pooled and
  per condition (statsmodels OLS).
- :mod:`.predictors`: NC1's leads, and the tournament of measures against duration baselines.
- :mod:`.duration`: the effect of a randomly drawn extra epoch (a natural experiment).
- :mod:`.effects`: condition means, across-condition correlation, similarity, fresh gaps.
- :mod:`.causal`: the nc_target doses: 2SLS, per-dose contrasts, side effects, checks.
- :mod:`.answers`, :mod:`.readings`: the answers table (TSV and Markdown): verdicts for the
  primary analyses only, effect sizes with BH q-values for the rest, the reference's reading.
- :mod:`.figures`: one figure per question.

numpy, pandas, scipy and statsmodels only; no torch.
"""
