"""What the modules of the compiled wing share: the fastmath flags and the slots of the step
loop's hyper-parameter and counter vectors. Private to the wing: interventions describe what
they add to a step with a :class:`~ncplasticity.continual.compiled.CompiledForm`, never with
these slots."""

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
    H_PLASTICITY_EVERY,
    H_ADAM,
    H_LAYER_NORM,
) = range(9)
NUM_HP = 9
# Indices of the int64 counter vector ``counters`` (read and advanced by the kernel).
C_STEP, C_ADAM_STEP, C_SEED = range(3)
NUM_COUNTERS = 3
