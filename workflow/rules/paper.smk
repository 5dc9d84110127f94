# The paper's claims and figures (DESIGN §3), from whatever the configured experiments ran:
# results/paper/reproduction.{tsv,md} and results/paper/figures/*.{pdf,png}. Which runs stand
# for the paper's comes from the study's settings (ncplasticity.paper.selection), never from
# variant names.

from ncplasticity.paper import selection as paper_selection

PAPER_EXPERIMENTS = [
    e for e in ("continual", "warm_start") if e in config["experiments"]
]
PAPER_CHOICE = {
    "continual": (
        paper_selection.continual_choice(
            {run.variant: run.settings for run in CONTINUAL_RUNS.values()},
            CONTINUAL_SWEEPS,
            CONTINUAL_ANALYSIS_TASKS,
            seeds_of("continual"),
        )
        if "continual" in PAPER_EXPERIMENTS
        else None
    ),
    "warm_start": (
        paper_selection.warm_start_choice(
            WARM_START_VARIANTS,
            WARM_START_SOURCES,
            WARM_START.get("correlation_window", 1),
            seeds_of("warm_start"),
        )
        if "warm_start" in PAPER_EXPERIMENTS
        else None
    ),
}
PAPER_SWEEP = (PAPER_CHOICE["continual"] or {}).get("sweep", [])
PAPER_WARM_START_TABLES = warm_start_tables()
PAPER_WARM_START_CORRELATIONS = warm_start_outputs.CORRELATIONS
PAPER_SWEEP_CORRELATIONS = continual_outputs.TABLES["sweep_correlations"][0]
PAPER_REPRODUCTION_INPUTS = {}
if "continual" in PAPER_EXPERIMENTS:
    PAPER_REPRODUCTION_INPUTS["continual_tables"] = continual_tables()
    if PAPER_SWEEP:
        PAPER_REPRODUCTION_INPUTS["sweep_correlations"] = PAPER_SWEEP_CORRELATIONS
if "warm_start" in PAPER_EXPERIMENTS:
    PAPER_REPRODUCTION_INPUTS |= {
        "warm_start_tables": PAPER_WARM_START_TABLES,
        "warm_start_correlations": PAPER_WARM_START_CORRELATIONS,
        "warmup_logs": warm_start_warmup_logs(),
    }

# name -> whether the configured runs allow it (it is then among the final targets), its
# inputs and the keyword arguments of its drawing function (ncplasticity.paper.figures).
PAPER_FIGURES = {
    "continual_accuracy_nc1": (
        "continual" in PAPER_EXPERIMENTS,
        continual_tables(),
        {
            "analysis_tasks": CONTINUAL_ANALYSIS_TASKS,
            "variants": list(
                dict.fromkeys(run.variant for run in CONTINUAL_RUNS.values())
            ),
        },
    ),
    "first_task_sweep_correlations": (
        "continual" in PAPER_EXPERIMENTS and bool(PAPER_SWEEP),
        [PAPER_SWEEP_CORRELATIONS],
        {"variants": PAPER_SWEEP},
    ),
    "warm_start_nc_vs_accuracy": (
        "warm_start" in PAPER_EXPERIMENTS,
        PAPER_WARM_START_TABLES,
        {
            # The paper's plain warm-up, else the first variant's.
            "variant": (PAPER_CHOICE["warm_start"] or {}).get("plain")
            or next(iter(WARM_START_VARIANTS), None),
            "variants": list(WARM_START_VARIANTS),
        },
    ),
    "warm_start_sliding_correlation": (
        "warm_start" in PAPER_EXPERIMENTS,
        [PAPER_WARM_START_CORRELATIONS],
        {
            "window": WARM_START.get("correlation_window", 1),
            "variants": list(WARM_START_VARIANTS),
        },
    ),
    "warm_start_accuracy": (
        "warm_start" in PAPER_EXPERIMENTS,
        PAPER_WARM_START_TABLES,
        {"variants": list(WARM_START_VARIANTS)},
    ),
}
# Final targets (rule all): the paper's table and the figures the configured experiments allow.
PAPER_TARGETS = (
    []
    if not PAPER_EXPERIMENTS
    else [
        "results/paper/reproduction.tsv",
        "results/paper/reproduction.md",
        *expand(
            "results/paper/figures/{name}.{ext}",
            name=[name for name, (wanted, *_) in PAPER_FIGURES.items() if wanted],
            ext=["pdf", "png"],
        ),
    ]
)


# Light work: on a cluster these run on the submitting node instead of waiting in the queue.
localrules:
    paper_reproduction,
    paper_figure_continual_accuracy_nc1,
    paper_figure_first_task_sweep_correlations,
    paper_figure_warm_start_nc_vs_accuracy,
    paper_figure_warm_start_sliding_correlation,
    paper_figure_warm_start_accuracy,


rule paper_reproduction:
    input:
        **PAPER_REPRODUCTION_INPUTS,
    output:
        # Shown in the report as HTML (report.smk).
        tsv="results/paper/reproduction.tsv",
        md="results/paper/reproduction.md",
    log:
        "results/logs/paper_reproduction/reproduction.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        choice=PAPER_CHOICE,
    script:
        "../scripts/paper_reproduction.py"


# One rule per figure (paper_figure_<name>), drawn by ncplasticity.paper.figures.FIGURES; the
# report groups them by the experiment they come from.
PAPER_FIGURE_SUBCATEGORIES = {
    "continual_accuracy_nc1": "Continual learning",
    "first_task_sweep_correlations": "Continual learning",
    "warm_start_nc_vs_accuracy": "Warm starting",
    "warm_start_sliding_correlation": "Warm starting",
    "warm_start_accuracy": "Warm starting",
}
for paper_figure, (_, paper_inputs, paper_kwargs) in PAPER_FIGURES.items():

    rule:
        name:
            f"paper_figure_{paper_figure}"
        input:
            paper_inputs,
        output:
            pdf=f"results/paper/figures/{paper_figure}.pdf",
            png=report(
                f"results/paper/figures/{paper_figure}.png",
                caption=f"../report/paper_{paper_figure}.rst",
                category="Paper",
                subcategory=PAPER_FIGURE_SUBCATEGORIES[paper_figure],
            ),
        log:
            f"results/logs/paper_figure/{paper_figure}.log",
        conda:
            ANALYSIS_ENV
        threads: 1
        resources:
            runtime=10,
            mem_mb=2000,
        params:
            figure=paper_figure,
            kwargs=paper_kwargs,
        script:
            "../scripts/paper_figure.py"
