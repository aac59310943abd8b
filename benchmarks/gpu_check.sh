#!/usr/bin/env bash
# attnlens's cuda paths on a machine with one GPU, in under 8 minutes (see benchmarks/gpu_check.py):
# capture exactness (fp32, bf16 autocast) against the CPU, the server on the GPU, 2 minutes of
# pretraining per size (tokens/s, model FLOPs utilisation) and the atlas against its bare forward.
#
#   benchmarks/gpu_check.sh [--parts capture,server,pretrain,atlas] [--seconds 120] [--sizes mini,base]
#
# Exit status: 0 all parts passed, 1 a part failed, 2 no CUDA device (one line on stderr), 124 over 8 minutes.
# PYTHON picks the interpreter (default: the checkout's .venv, else python3); ATTNLENS_GPU_PEAK_TFLOPS sets the
# GPU's dense bf16 peak when its name is not in gpu_check.py's table.
set -u
cd "$(dirname "$0")/.." || exit 2
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TOKENIZERS_PARALLELISM=false
timeout --signal=INT --kill-after=15 470 "$PY" benchmarks/gpu_check.py "$@"
status=$?
if [ "$status" -eq 124 ]; then
    echo "gpu_check: stopped after 470 s (the check must finish in 8 minutes)" >&2
fi
exit "$status"
