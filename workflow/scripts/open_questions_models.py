from ncplasticity.open_questions.run import mixed_model, predictor_ranking
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
params = snakemake.params
stage = mixed_model if params.stage == "mixed_model" else predictor_ranking
stage(snakemake.input, params.settings, params.analysis_tasks, snakemake.output[0])
