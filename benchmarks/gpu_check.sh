#!/usr/bin/env bash
# The checks and timings that need a GPU, in one run of about seven minutes:
#   SDTW_RETRIEVAL_COMMIT=$(git rev-parse --short HEAD) bash benchmarks/gpu_check.sh [OUT_DIR]
# 1. the Pallas kernels compiled by Triton against brute force and the XLA path (tests/sdtw/test_pallas.py);
# 2. soft-DTW speed beside OTT-JAX at the sizes of the GPU comparison (recorded: docs/results/sdtw_speed_gpu.md);
# 3. warps per program of the Pallas kernels;
# 4. exact search beside one matmul + top_k (recorded: docs/results/exact_search_gpu.md);
# 5. the losses, models and sdtw tests on the GPU.
# Each step has its own time limit and log in OUT_DIR; a failing step does not stop the others.
# Python packages the machine lacks (ott-jax, jaxopt) are installed from wheels in .whl/ when present.
set -u
out=${1:-${OUT:-gpu-logs}}
mkdir -p "$out"
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
summary=()

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $out/NAME.log
  local name=$1 limit=$2 started=$SECONDS rc
  shift 2
  echo "== $name: $*"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  rc=$?
  summary+=("$name: exit $rc in $((SECONDS - started)) s")
  tail -n 40 "$out/$name.log"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader
python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
tests=(python3 -m pytest -q -o addopts= -p no:cacheprovider -rfE)
step pallas_tests 90 "${tests[@]}" -x tests/sdtw/test_pallas.py
step sdtw_speed 120 python3 benchmarks/sdtw_speed.py --impl pallas xla --no-tslearn --repeats 10 \
  --sizes 16x256 256x256 64x512 4x1024 1x4096 --record
step pallas_tuning 70 python3 benchmarks/pallas_tuning.py --sizes 16x256 4x1024 1x4096 --warps 4 8 16 32 \
  --repeats 5
step exact_search 40 python3 benchmarks/exact_search.py --sizes 1000000x12 200000x240 --queries 4096 \
  --settings 16384:1024 65536:4096 262144:4096 --record
# Several test processes share the GPU: none may take most of its memory up front.
step tests 120 env XLA_PYTHON_CLIENT_PREALLOCATE=false "${tests[@]}" -n 6 tests/losses tests/models tests/sdtw \
  --ignore=tests/sdtw/test_pallas.py
cp docs/results/*_gpu.md "$out/" 2>/dev/null
printf '%s\n' "${summary[@]}"
