from ncplasticity.data import prepare_dataset
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
prepare_dataset(
    snakemake.wildcards.dataset,
    snakemake.params.data_root,
    snakemake.output[0],
    download=snakemake.params.download,
)
