from ncplasticity.report import write_config_record
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
write_config_record(snakemake.params.config, snakemake.output.yaml, snakemake.output.html)
