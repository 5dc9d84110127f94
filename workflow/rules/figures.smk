# Figure rules (PDF + PNG, registered with report()), one section per experiment.


# Light work: on a cluster these run on the submitting node instead of waiting in the queue.
localrules:
    continual_collapse_figure,
    continual_plasticity_figure,
    continual_sweep_figure,
    warm_start_figure_nc_metrics,
    warm_start_figure_finetune_accuracy,
    warm_start_figure_warmup_accuracy,
    warm_start_figure_sliding_correlation,


# --- Continual ---


# One rule per panel set of ncplasticity.continual.tables.PANEL_SETS
# (continual_{panels}_figure, drawing figures/{panels}_over_tasks).
for continual_panels in ["collapse", "plasticity"]:

    rule:
        name:
            f"continual_{continual_panels}_figure"
        input:
            continual_tables(),
        output:
            pdf=f"results/continual/figures/{continual_panels}_over_tasks.pdf",
            png=report(
                f"results/continual/figures/{continual_panels}_over_tasks.png",
                caption=f"../report/continual_{continual_panels}_over_tasks.rst",
                category="Continual learning",
                subcategory="Collapse and plasticity over tasks",
            ),
        log:
            f"results/logs/continual_{continual_panels}_figure/{continual_panels}_over_tasks.log",
        conda:
            ANALYSIS_ENV
        threads: 1
        resources:
            runtime=5,
            mem_mb=2000,
        params:
            analysis_tasks=CONTINUAL_ANALYSIS_TASKS,
            panels=continual_panels,
        script:
            "../scripts/continual_over_tasks_figure.py"


rule continual_sweep_figure:
    input:
        "results/continual/analysis/sweep_correlations.tsv",
    output:
        pdf="results/continual/figures/sweep_correlations.pdf",
        png=report(
            "results/continual/figures/sweep_correlations.png",
            caption="../report/continual_sweep_correlations.rst",
            category="Continual learning",
            subcategory="First-task sweep",
        ),
    log:
        "results/logs/continual_sweep_figure/sweep_correlations.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    script:
        "../scripts/continual_sweep_figure.py"


# --- Warm starting ---


# One rule per figure (warm_start_figure_<name>); ncplasticity.warm_start.tables.FIGURES draws it.
# The report groups them by question: the warm-up itself, and fine-tuning its checkpoints.
WARM_START_FIGURE_SUBCATEGORIES = {
    "nc_metrics": "Warm-up",
    "warmup_accuracy": "Warm-up",
    "finetune_accuracy": "Fine-tuning and NC",
    "sliding_correlation": "Fine-tuning and NC",
}
for warm_start_figure in WARM_START_FIGURE_NAMES:

    rule:
        name:
            f"warm_start_figure_{warm_start_figure}"
        input:
            warm_start_figure_inputs(warm_start_figure),
        output:
            pdf=f"results/warm_start/figures/{warm_start_figure}.pdf",
            png=report(
                f"results/warm_start/figures/{warm_start_figure}.png",
                caption=f"../report/warm_start_{warm_start_figure}.rst",
                category="Warm starting",
                subcategory=WARM_START_FIGURE_SUBCATEGORIES[warm_start_figure],
            ),
        log:
            f"results/logs/warm_start_figure/{warm_start_figure}.log",
        conda:
            ANALYSIS_ENV
        threads: 1
        resources:
            runtime=10,
            mem_mb=2000,
        params:
            figure=warm_start_figure,
            variants=list(WARM_START_VARIANTS),
        script:
            "../scripts/warm_start_figure.py"
