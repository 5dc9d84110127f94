from ncplasticity.plots import WARM_START_FIGURES
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
WARM_START_FIGURES[snakemake.params.figure](
    snakemake.input, snakemake.output.pdf, snakemake.output.png
)
