# What `snakemake --report report.html` adds to the experiments' figures: the configuration the
# run used (results/config_used.yaml), the analysis tables as HTML pages and every run's
# curves; workflow/report/workflow.rst is its introduction page.

import copy

from ncplasticity.report import report_context, table_page

# The resolved configuration, before the introduction's context below joins `config`: a param
# of config_used, so that a run with other settings rewrites the record.
CONFIG_RESOLVED = copy.deepcopy(config)
CONFIG_RECORD = "results/config_used.yaml"
CONFIG_PAGE = "results/config_used.html"

# name -> whether the configured experiments write it, its TSV, its report category and
# subcategory, its caption (workflow/report/) and the page's title.
REPORT_TABLES = {
    "continual_correlations": (
        "continual" in config["experiments"],
        continual_outputs.TABLES["correlations"][0],
        "Continual learning",
        "Collapse and plasticity over tasks",
        "continual_correlations_table.rst",
        "Continual learning: NC metric vs plasticity loss, per variant",
    ),
    "continual_sweep_correlations": (
        "continual" in config["experiments"],
        continual_outputs.TABLES["sweep_correlations"][0],
        "Continual learning",
        "First-task sweep",
        "continual_sweep_correlations_table.rst",
        "Continual learning: first-task sweep correlations across runs",
    ),
    "continual_variant_summary": (
        "continual" in config["experiments"],
        continual_outputs.TABLES["variant_summary"][0],
        "Continual learning",
        "Collapse and plasticity over tasks",
        "continual_variant_summary_table.rst",
        "Continual learning: per-variant summary over seeds",
    ),
    "warm_start_correlations": (
        "warm_start" in config["experiments"],
        warm_start_outputs.CORRELATIONS,
        "Warm starting",
        "Fine-tuning and NC",
        "warm_start_correlations_table.rst",
        "Warm starting: sliding-window NC metric vs fine-tuned accuracy",
    ),
    "warm_start_variant_summary": (
        "warm_start" in config["experiments"],
        warm_start_outputs.VARIANT_SUMMARY_TSV,
        "Warm starting",
        "Fine-tuning and NC",
        "warm_start_variant_summary_table.rst",
        "Warm starting: per-variant summary over seeds",
    ),
    "paper_reproduction": (
        bool(PAPER_EXPERIMENTS),
        "results/paper/reproduction.tsv",
        "Paper",
        "Claims",
        "paper_reproduction.rst",
        "The paper's claims: its values and ours",
    ),
    "open_questions_answers": (
        OPEN_QUESTIONS is not None and "continual" in config["experiments"],
        f"{OPEN_QUESTIONS_DIR}/answers.tsv",
        "Open questions",
        "Answers",
        "open_questions_answers.rst",
        "The paper's open questions: the answers",
    ),
    "open_questions_regularisers": (
        OPEN_QUESTIONS is not None and bool(OPEN_QUESTIONS_REGULARISERS),
        f"{OPEN_QUESTIONS_DIR}/regularisers.tsv",
        "Open questions",
        "Next check 3: NC regularisers",
        "open_questions_regularisers_table.rst",
        "The paper's third next check: regularisers aimed at an NC metric",
    ),
}


REPORT_TARGETS = [
    CONFIG_RECORD,
    CONFIG_PAGE,
    *(table_page(tsv) for wanted, tsv, *_ in REPORT_TABLES.values() if wanted),
    *(
        RUN_CURVES_DIR.format(experiment=experiment)
        for experiment in config["experiments"]
    ),
]


# Light work: on a cluster these run on the submitting node instead of waiting in the queue.
localrules:
    config_used,
    report_tables,


rule config_used:
    output:
        yaml=report(
            CONFIG_RECORD,
            caption="../report/config_used.rst",
            category="Configuration",
        ),
        html=report(
            CONFIG_PAGE,
            caption="../report/config_used.rst",
            category="Configuration",
        ),
    log:
        "results/logs/config_used/config_used.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=5,
        mem_mb=500,
    params:
        config=CONFIG_RESOLVED,
    script:
        "../scripts/config_used.py"


# The tables' HTML pages, all in one light job (one job per table cost more in Python start-up
# than the pages take to write).
REPORT_TABLES_WANTED = {
    name: spec for name, (wanted, *spec) in REPORT_TABLES.items() if wanted
}


rule report_tables:
    input:
        **{name: tsv for name, (tsv, *_) in REPORT_TABLES_WANTED.items()},
    output:
        **{
            name: report(
                table_page(tsv),
                caption=f"../report/{caption}",
                category=category,
                subcategory=subcategory,
            )
            for name, (
                tsv,
                category,
                subcategory,
                caption,
                _,
            ) in REPORT_TABLES_WANTED.items()
        },
    log:
        "results/logs/report_tables/report_tables.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=5,
        mem_mb=1000,
    params:
        titles={name: title for name, (*_, title) in REPORT_TABLES_WANTED.items()},
    script:
        "../scripts/report_tables.py"


# Read by workflow/report/workflow.rst as snakemake.config["_report"] (the only value a report's
# introduction is given is the configuration); not a setting: the schema admits no such key.
config["_report"] = report_context(
    CONFIG_RESOLVED,
    CONFIG_RECORD,
    # The Snakefile's configfile first, then the command line's, which are laid over it.
    [
        *(f for f in workflow.configfiles if f not in workflow.overwrite_configfiles),
        *workflow.overwrite_configfiles,
    ],
    {"continual": CONTINUAL_RUNS, "warm_start": WARM_START_RUNS},
)
