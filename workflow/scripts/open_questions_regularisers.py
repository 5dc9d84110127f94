from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])

from ncplasticity.open_questions.run import regulariser_table  # noqa: E402 - errors to the log

regulariser_table(list(snakemake.input), snakemake.params.settings, snakemake.output[0])
