from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])

from ncplasticity.paper.reproduction import Inputs, write_reproduction  # noqa: E402 - errors to the log

inputs = snakemake.input
write_reproduction(
    Inputs(
        snakemake.params.choice,
        continual_tables=list(inputs.get("continual_tables", [])),
        sweep_correlations=inputs.get("sweep_correlations"),
        warm_start_tables=list(inputs.get("warm_start_tables", [])),
        warm_start_correlations=inputs.get("warm_start_correlations"),
        warmup_logs=list(inputs.get("warmup_logs", [])),
    ),
    snakemake.output.tsv,
    snakemake.output.md,
)
