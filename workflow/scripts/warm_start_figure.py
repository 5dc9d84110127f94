from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])

from ncplasticity.warm_start.figures import FIGURES  # noqa: E402 - import errors go to the log

FIGURES[snakemake.params.figure](
    list(snakemake.input),
    snakemake.output.pdf,
    snakemake.output.png,
    variants=snakemake.params.variants,
)
