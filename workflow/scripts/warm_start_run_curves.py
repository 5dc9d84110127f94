from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])

from ncplasticity.run_curves import warm_start_run_figures  # noqa: E402 - import errors go to the log

warm_start_run_figures(
    list(snakemake.input.tables),
    list(snakemake.input.warmup_logs),
    snakemake.params.runs,
    snakemake.output[0],
)
