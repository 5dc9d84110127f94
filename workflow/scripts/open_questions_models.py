from ncplasticity.open_questions.run import model_table
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
params = snakemake.params
model_table(
    params.stage, snakemake.input, params.settings, params.analysis_tasks, snakemake.output[0]
)
