#!/usr/bin/env bash
# The prepared GPU check: one command on a fresh CUDA machine (torch, Triton, onnx, onnxruntime,
# numpy, safetensors, rich preinstalled; no network), everything written to one folder
# ($OUT on the device machine, else gpu_check_out/), the summary printed last.
#
#   bash benchmarks/gpu/check.sh             # on the GPU machine (under 8 minutes, start excluded)
#   bash benchmarks/gpu/check.sh --dry-run   # rehearse on CPU at tiny sizes
#
# Wheels in .whl/ (PyAV, and optionally ftfy + wcwidth for the tokenizer tests) are installed
# first; make them here with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl av ftfy wcwidth
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 TRITON_DEFAULT_FP_FUSION=1
if [[ " $* " == *" --dry-run "* ]]; then export TRITON_INTERPRET=1; fi
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} || { echo "check.sh: installing .whl/ failed" >&2; exit 2; }
fi
if ! python3 -c "import salrt" 2>/dev/null; then  # the package itself, from this checkout, offline
    python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/tmp/salrt_install.log 2>&1 \
        || { echo "check.sh: pip install -e . failed (see /tmp/salrt_install.log)" >&2; tail -5 /tmp/salrt_install.log >&2; exit 2; }
fi
python3 -c "import av" 2>/dev/null || echo "check.sh: warning: PyAV is missing (carry its wheel in .whl/): media tests will fail" >&2
exec python3 benchmarks/gpu/check.py "$@"
