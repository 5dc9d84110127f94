from ncplasticity.report import table_html
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
table_html(snakemake.input[0], snakemake.output[0], snakemake.params.title)
