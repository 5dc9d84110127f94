import importlib.util
import os

from snakemake.utils import min_version, validate

min_version("9.0")

# At most one pending wake-up of the scheduling loop (workflow/lib/snakemake_scheduler.py): one
# timer chain per finished job took up to a third of a core in a study of 462 jobs.
_scheduler_spec = importlib.util.spec_from_file_location(
    "snakemake_scheduler",
    os.path.join(workflow.basedir, "workflow/lib/snakemake_scheduler.py"),
)
snakemake_scheduler = importlib.util.module_from_spec(_scheduler_spec)
_scheduler_spec.loader.exec_module(snakemake_scheduler)
snakemake_scheduler.install()


configfile: os.path.join(workflow.basedir, "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/continual.smk"
include: "workflow/rules/warm_start.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/open_questions.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        CONTINUAL_TARGETS,
        WARM_START_TARGETS,
        PAPER_TARGETS,
        OPEN_QUESTIONS_TARGETS,
        REPORT_TARGETS,
