"""The paper's statistics and figures (Bonifazi et al. 2024, DESIGN §3), computed exactly as the
paper defines them from the per-run tables of whichever configuration the workflow ran:
:mod:`.selection` picks the runs that follow the paper's protocol from the study's settings,
:mod:`.reproduction` builds the table of the paper's quantitative claims, :mod:`.figures` draws
the paper's figures."""
