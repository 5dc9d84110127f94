from ncplasticity.open_questions.figures import draw
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
draw(
    snakemake.params.figure,
    dict(snakemake.input.items()),
    snakemake.output.pdf,
    snakemake.output.png,
)
