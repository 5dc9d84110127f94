from ncplasticity.runlog import log_to_file
from ncplasticity.warm_start import run_warmup

log_to_file(snakemake.log[0])
run_warmup(
    snakemake.input.dataset,
    cfg=snakemake.params.cfg,
    variant=snakemake.wildcards.variant,
    seed=int(snakemake.wildcards.seed),
    features_path=snakemake.output.features,
    checkpoint_dir=snakemake.params.checkpoint_dir,
    log_path=snakemake.output.log_tsv,
    partial_root=snakemake.params.partial_root,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
