from ncplasticity.runlog import log_to_file
from ncplasticity.warm_start import run_finetune

log_to_file(snakemake.log[0])
run_finetune(
    snakemake.input.dataset,
    cfg=snakemake.params.cfg,
    variant=snakemake.params.variant,
    seed=int(snakemake.wildcards.seed),
    checkpoint_path=snakemake.input.get("checkpoint"),
    out_path=snakemake.output[0],
    partial_root=snakemake.params.partial_root,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
