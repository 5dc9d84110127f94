# Rules of this stage: tables and correlations, one section per experiment.


# --- Permuted MNIST ---


# --- Warm starting ---
