#!/usr/bin/env bash
# One command for the GPU table: the cuda/triton tests, kernels_gpu.py, and the tiny suite on CUDA
# compared with CPU, one verdict table (benchmarks/perf/gpu_check.py says what each step does).
#
#   PYTHONPATH=. benchmarks/perf/gpu_check.sh [OUT_DIR] [--device cuda|cpu] [--limit 20] [-k EXPR]
#
# Run it from the repository root: the steps name benchmarks/ and tests/ by relative path.
# Nothing needs the network (HF_HUB_OFFLINE=1); everything goes under OUT_DIR (default gpu-check-out/).
set -euo pipefail
if [[ ! -f benchmarks/perf/gpu_check.py || ! -d tests ]]; then
    echo "gpu_check.sh: run it from the repository root (benchmarks/perf/gpu_check.py not found here)" >&2
    exit 2
fi
export HF_HUB_OFFLINE=1
export PYTHONPATH="${PYTHONPATH:-.}"
exec python benchmarks/perf/gpu_check.py "$@"
