from ncplasticity.report import table_html
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
for name, title in snakemake.params.titles.items():
    table_html(snakemake.input[name], snakemake.output[name], title)
