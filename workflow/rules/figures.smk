# Figure rules (PDF + PNG, registered with report()), one section per experiment.


# --- Permuted MNIST ---


# --- Warm starting ---
