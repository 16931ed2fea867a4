#!/usr/bin/env bash
# The GPU check: training-step, extraction and epoch-time figures on a CUDA machine, as one table.
#
#   make .venv/.requirements-installed   # or: pip install -r requirements.txt && pip install --no-deps -e .
#   bash bench/gpu_check.sh              # about 5 minutes; extra arguments go to bench/gpu_check.py
#
# Uses .venv/bin/python when the Makefile built it, else python3 (override with PYTHON=...).
# Stops after 9.5 minutes whatever happens, so it fits a 10-minute slot.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
    echo "gpu_check: $PYTHON cannot import torch: install first (pip install -r requirements.txt && pip install --no-deps -e .)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: no CUDA device visible to torch (through $PYTHON): nothing measured." >&2
    echo "gpu_check: on a CPU, try: $PYTHON bench/gpu_check.py --device cpu --quick" >&2
    exit 1
fi
"$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)'
timeout --signal=INT 570 "$PYTHON" bench/gpu_check.py --device cuda "$@"
