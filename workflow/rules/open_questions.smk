# The paper's open questions (DESIGN §3c) from the continual runs' tables:
# results/open_questions/*.tsv, answers.{tsv,md} and one figure per question. A target when the
# configuration sets `open_questions` (configs/open_questions.yaml). Which variants answer which
# question comes from their resolved settings (ncplasticity.open_questions.conditions).

from ncplasticity.open_questions import outputs as open_questions_outputs

OPEN_QUESTIONS = config.get("open_questions")
OPEN_QUESTIONS_DIR = "results/open_questions"
# variant -> its resolved settings (the same for every seed).
OPEN_QUESTIONS_SETTINGS = {run.variant: run.settings for run in CONTINUAL_RUNS.values()}
OPEN_QUESTIONS_FINAL_TASKS = (OPEN_QUESTIONS or {}).get("final_tasks", 20)
# The analyses named before the study ran (the only rows with a verdict), and the answers
# table of a reference study at another scale (each row then says whether it reads the same).
OPEN_QUESTIONS_PRIMARY = (OPEN_QUESTIONS or {}).get("primary", [])
OPEN_QUESTIONS_REFERENCE = (
    {"reference": OPEN_QUESTIONS["reference"]}
    if (OPEN_QUESTIONS or {}).get("reference")
    else {}
)
OPEN_QUESTIONS_TABLES = {
    name: f"{OPEN_QUESTIONS_DIR}/{name}.tsv"
    for name in open_questions_outputs.TABLE_NAMES
}
# The paper's third next check (NC regularisers) needs the warm-start experiment.
OPEN_QUESTIONS_REGULARISERS = (
    {"regularisers": f"{OPEN_QUESTIONS_DIR}/regularisers.tsv"}
    if "warm_start" in config["experiments"]
    else {}
)
# Final targets of the study when the config asks for the open questions (rule all).
OPEN_QUESTIONS_TARGETS = (
    []
    if OPEN_QUESTIONS is None or "continual" not in config["experiments"]
    else [
        *OPEN_QUESTIONS_TABLES.values(),
        *OPEN_QUESTIONS_REGULARISERS.values(),
        f"{OPEN_QUESTIONS_DIR}/answers.tsv",
        f"{OPEN_QUESTIONS_DIR}/answers.md",
        *expand(
            f"{OPEN_QUESTIONS_DIR}/figures/{{name}}.{{ext}}",
            name=list(open_questions_outputs.FIGURE_NAMES),
            ext=["pdf", "png"],
        ),
    ]
)


# Light work: on a cluster these run on the submitting node instead of waiting in the queue.
localrules:
    open_questions_tables,
    open_questions_regularisers,
    open_questions_answers,
    open_questions_figure_within_run,
    open_questions_figure_leads,
    open_questions_figure_dose_response,
    open_questions_figure_across_conditions,
    open_questions_figure_task_similarity,
    open_questions_figure_predictors,


rule open_questions_tables:
    input:
        continual_tables(),
    output:
        **{
            name: OPEN_QUESTIONS_TABLES[name]
            for name in open_questions_outputs.CONDITION_TABLES
        },
    log:
        "results/logs/open_questions/tables.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        settings=OPEN_QUESTIONS_SETTINGS,
        analysis_tasks=CONTINUAL_ANALYSIS_TASKS,
        final_tasks=OPEN_QUESTIONS_FINAL_TASKS,
    script:
        "../scripts/open_questions_tables.py"


# The panel models, NC1's leads and the predictor tournament over the whole panel: each its own
# job, so they run side by side.
for open_questions_model in open_questions_outputs.MODEL_TABLES:

    rule:
        name:
            f"open_questions_{open_questions_model}"
        input:
            continual_tables(),
        output:
            OPEN_QUESTIONS_TABLES[open_questions_model],
        log:
            f"results/logs/open_questions/{open_questions_model}.log",
        conda:
            ANALYSIS_ENV
        threads: 1
        resources:
            runtime=60,
            mem_mb=4000,
        params:
            stage=open_questions_model,
            settings=OPEN_QUESTIONS_SETTINGS,
            analysis_tasks=CONTINUAL_ANALYSIS_TASKS,
        script:
            "../scripts/open_questions_models.py"


rule open_questions_regularisers:
    input:
        warm_start_tables(),
    output:
        f"{OPEN_QUESTIONS_DIR}/regularisers.tsv",
    log:
        "results/logs/open_questions/regularisers.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=5,
        mem_mb=1000,
    params:
        settings=WARM_START_VARIANTS,
    script:
        "../scripts/open_questions_regularisers.py"


rule open_questions_answers:
    input:
        **{
            name: OPEN_QUESTIONS_TABLES[name]
            for name in open_questions_outputs.ANSWER_INPUTS
        },
        **OPEN_QUESTIONS_REGULARISERS,
        **OPEN_QUESTIONS_REFERENCE,
    output:
        # Shown in the report as HTML (report.smk).
        tsv=f"{OPEN_QUESTIONS_DIR}/answers.tsv",
        md=f"{OPEN_QUESTIONS_DIR}/answers.md",
    log:
        "results/logs/open_questions/answers.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=5,
        mem_mb=1000,
    params:
        primary=OPEN_QUESTIONS_PRIMARY,
    script:
        "../scripts/open_questions_answers.py"


# One rule per figure (open_questions_figure_<name>), drawn by
# ncplasticity.open_questions.figures.FIGURES from the tables it names; one question each, the
# report's subcategory.
OPEN_QUESTIONS_SUBCATEGORIES = {
    "within_run": "Within-run correlation",
    "leads": "Leads and panel models",
    "dose_response": "Dose response (NC dial)",
    "across_conditions": "Across conditions",
    "task_similarity": "Task similarity",
    "predictors": "Predictors of plasticity loss",
}
for (
    open_questions_figure,
    open_questions_inputs,
) in open_questions_outputs.FIGURE_INPUTS.items():

    rule:
        name:
            f"open_questions_figure_{open_questions_figure}"
        input:
            **{name: OPEN_QUESTIONS_TABLES[name] for name in open_questions_inputs},
        output:
            pdf=f"{OPEN_QUESTIONS_DIR}/figures/{open_questions_figure}.pdf",
            png=report(
                f"{OPEN_QUESTIONS_DIR}/figures/{open_questions_figure}.png",
                caption=f"../report/open_questions_{open_questions_figure}.rst",
                category="Open questions",
                subcategory=OPEN_QUESTIONS_SUBCATEGORIES[open_questions_figure],
            ),
        log:
            f"results/logs/open_questions/figure_{open_questions_figure}.log",
        conda:
            ANALYSIS_ENV
        threads: 1
        resources:
            runtime=5,
            mem_mb=2000,
        params:
            figure=open_questions_figure,
        script:
            "../scripts/open_questions_figure.py"
