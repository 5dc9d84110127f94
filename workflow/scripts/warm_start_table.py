from ncplasticity.runlog import log_to_file
from ncplasticity.warm_start_analysis import run_table

log_to_file(snakemake.log[0])
run_table(
    snakemake.input.metrics,
    snakemake.input.warmup_log,
    snakemake.input.finetune,
    snakemake.input.fresh,
    snakemake.output[0],
)
