from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])

from ncplasticity.warm_start.tables import variant_summary  # noqa: E402 - errors to the log

variant_summary(list(snakemake.input), snakemake.output.tsv, snakemake.output.md)
