"""What the compiled loop (:mod:`.kernel`) and its per-unit events (:mod:`.kernel_events`)
share: the fastmath flags and the slots of the step loop's hyper-parameter, counter and
per-unit state vectors. A module of its own so that :mod:`.kernel_events` reads them without
importing :mod:`.kernel`, which imports it.
"""

# Reassociation lets LLVM vectorise the dot products; no-NaN/no-inf flags are left out so
# that a diverging run still shows NaNs. Every function uses numpy's error model: Python's
# checks each division for zero, and that branch keeps LLVM from vectorising the loop.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

# Indices of the float64 hyper-parameter vector ``hp``.
(
    H_LR,
    H_BETA1,
    H_BETA2,
    H_EPS,
    H_WEIGHT_DECAY,
    H_INIT_DECAY,
    H_NOISE_STD,
    H_DIAL,
    H_REDO_EVERY,
    H_REDO_TAU,
    H_CBP_RATE,
    H_CBP_MATURITY,
    H_CBP_DECAY,
    H_PLASTICITY_EVERY,
    H_ADAM,
    H_LAYER_NORM,
) = range(16)
NUM_HP = 16
# Indices of the int64 counter vector ``counters`` (read and advanced by the kernel).
C_STEP, C_ADAM_STEP, C_SEED, C_REDO_RESETS, C_CBP_REPLACED = range(5)
NUM_COUNTERS = 5
# Rows of the float64 per-hidden-unit state ``units`` [4, all hidden units].
U_REDO_SUM, U_CBP_UTIL, U_CBP_AGE, U_CBP_MEAN = range(4)
