import os

from snakemake.utils import min_version, validate

from ncplasticity import snakemake_scheduler

min_version("9.0")

# At most one pending wake-up of the scheduling loop (ncplasticity.snakemake_scheduler): one
# timer chain per finished job took up to a third of a core in a study of 462 jobs.
snakemake_scheduler.install()


configfile: os.path.join(workflow.basedir, "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/continual.smk"
include: "workflow/rules/warm_start.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/open_questions.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets,
        REPORT_TARGETS,
