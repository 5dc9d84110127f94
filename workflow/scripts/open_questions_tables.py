from ncplasticity.open_questions.run import condition_tables
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
condition_tables(
    snakemake.input,
    snakemake.params.settings,
    snakemake.params.analysis_tasks,
    snakemake.params.final_tasks,
    dict(snakemake.output.items()),
)
