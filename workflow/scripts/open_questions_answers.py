from ncplasticity.open_questions.run import answers
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
answers(
    dict(snakemake.input.items()),
    snakemake.output.tsv,
    snakemake.output.md,
    snakemake.params.primary,
    snakemake.input.get("reference"),
)
