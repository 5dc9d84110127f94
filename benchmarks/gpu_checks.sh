#!/usr/bin/env bash
# The CUDA checks of the warm-start loop, in one run, on a machine with a GPU (no data needed):
#   1. our training loop against a plain PyTorch loop, step by step, on the GPU (fp32, bf16
#      autocast, channels_last), the step replayed as a CUDA graph against the same loop run
#      step by step, and device resolution;
#   2. images/s of a ResNet-18 width-64 epoch on CIFAR-10-shaped images, our loop against the
#      DataLoader + PIL-transforms loop, at the default config's settings (float32), the paper
#      config's (float32, channels_last) and bf16 autocast with channels_last; ours both step
#      by step and replayed as a CUDA graph (the workflow's default on a GPU). The paper
#      config's rate is the one to pass to `benchmarks/paper_budget.py --images-per-second`.
# Usage: bash benchmarks/gpu_checks.sh   (WORKERS=n sets the DataLoader's workers, default 4)
set -euo pipefail
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
torch.cuda.get_device_name())"
python3 -m pytest -q -p no:cacheprovider -rs tests/test_jobs.py tests/test_warm_start.py \
    tests/test_warm_start_training.py \
    -k "cuda or gpu"
for options in "" "--channels-last" "--precision bfloat16 --channels-last"; do
    # shellcheck disable=SC2086  # the options are words
    python3 benchmarks/bench_resnet_epoch.py --synthetic-cifar10 --width 64 --device cuda \
        --num-workers "${WORKERS:-4}" $options
done
