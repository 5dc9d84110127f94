# Rules of this stage.
EXPERIMENT_TARGETS["warm_start"] = lambda: []
