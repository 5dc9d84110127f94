from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])

from ncplasticity.run_curves import continual_run_figures  # noqa: E402 - import errors go to the log

continual_run_figures(list(snakemake.input), snakemake.params.runs, snakemake.output[0])
