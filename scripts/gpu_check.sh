#!/usr/bin/env bash
# gpu_check.sh: everything that needs a GPU, in one command, on a machine with a GPU, CUDA,
# cmake, and python3 with numpy, torch and transformers; no network.
#   1. builds spladex for sm_90 (Release, -DSPLADEX_CUDA_ARCHS=90; override with GPU_CHECK_ARCHS)
#   2. runs ctest, then test_ops and test_encoder_gpu, which must pass on the device (exit 77 =
#      no device is a failure here)
#   3. compute-sanitizer --tool memcheck on test_ops --small, with SPLADEX_CUDA_SYNC=1
#   4. benchmarks/bench_gpu.py: spladex against HF transformers fp16 (naver's formula) on the same
#      GPU, efficient-splade doc config with random weights, 200,000 synthetic passages
# Each step has a time limit, and all of it stays under 8 minutes (GPU_CHECK_BUDGET seconds).
# Writes gpu_check.log and the benchmark's results (bench_gpu.md, bench_gpu.json) to $OUT if
# set, else to build-gpu/gpu-check-out. Prints a final table; exits non-zero if any step failed.
# Usage: scripts/gpu_check.sh [--passages N]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$root/build-gpu
out=${OUT:-$build/gpu-check-out}
mkdir -p "$out"
log=$out/gpu_check.log
: >"$log"
passages=200000
[ "${1:-}" = "--passages" ] && passages=$2
archs=${GPU_CHECK_ARCHS:-90}
budget=${GPU_CHECK_BUDGET:-470}
work=$out/work
mkdir -p "$work"
start=$(date +%s)
jobs=$(nproc)

declare -a names statuses times

say() { echo "$*" | tee -a "$log"; }

# step NAME CAP_SECONDS COMMAND...: runs COMMAND under `timeout` (the cap, or what is left of the
# budget if less), logs its output, records status and seconds. Never aborts the script.
step() {
  local name=$1 cap=$2
  shift 2
  local now left limit t0 rc
  now=$(date +%s)
  left=$((budget - (now - start)))
  limit=$cap
  ((left < limit)) && limit=$left
  if ((limit < 5)); then
    say "== $name: SKIPPED (time budget spent)"
    names+=("$name"); statuses+=("skipped (budget)"); times+=(0)
    return 0
  fi
  say "== $name (limit ${limit}s): $*"
  t0=$(date +%s)
  set +e
  timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
  rc=$?
  set -e
  local dt=$(($(date +%s) - t0))
  local st="ok"
  if ((rc == 124 || rc == 137)); then st="TIMEOUT"; elif ((rc != 0)); then st="FAILED (exit $rc)"; fi
  say "   -> $st in ${dt}s"
  names+=("$name"); statuses+=("$st"); times+=("$dt")
  return 0
}

say "gpu_check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$log" || true
else
  say "gpu_check: nvidia-smi not found"
fi

step "configure" 60 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSPLADEX_CUDA_ARCHS="$archs"
step "build" 240 cmake --build "$build" -j"$jobs"
if ! grep -q 'SPLADEX_HAVE_CUDA' "$build/CMakeFiles/spladex_core.dir/flags.make" 2>/dev/null; then
  say "gpu_check: WARNING: the build has no CUDA backend (nvcc not found?)"
fi

# Random-weight models: the tiny ones for test_encoder_gpu, efficient-splade for the benchmark.
step "models" 90 bash -c "
  set -e
  for p in tiny-distilbert tiny-bert; do
    [ -f tests/fixtures/generated/\$p/model.safetensors ] || python3 scripts/make_random_model.py \$p tests/fixtures/generated/\$p
  done
  [ -f '$work/efficient-splade/model.safetensors' ] || python3 scripts/make_random_model.py efficient-splade '$work/efficient-splade'
"

# Every other test through ctest; the two GPU tests run directly, because here a skip (77: no
# device) must count as a failure.
step "ctest" 150 env SPLADEX_SOURCE_DIR="$root" ctest --test-dir "$build" --output-on-failure -j4 \
  -E '^(test_ops|test_encoder_gpu)$'

step "test_ops" 60 "$build/test_ops"
step "test_encoder_gpu" 120 "$build/test_encoder_gpu"

cs=""
for c in "$(command -v compute-sanitizer || true)" /usr/local/cuda/bin/compute-sanitizer \
         /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  if [ -n "$c" ] && [ -x "$c" ]; then cs=$c; break; fi
done
if [ -n "$cs" ]; then
  step "memcheck" 120 env SPLADEX_CUDA_SYNC=1 "$cs" --tool memcheck --error-exitcode 99 \
    --leak-check full "$build/test_ops" --small
else
  say "== memcheck: compute-sanitizer not found"
  names+=("memcheck"); statuses+=("FAILED (no compute-sanitizer)"); times+=(0)
fi

step "bench_gpu" 240 python3 benchmarks/bench_gpu.py --spladex "$build/spladex" \
  --model "$work/efficient-splade" --passages "$passages" --work "$work" --out "$out"

total=$(($(date +%s) - start))
failed=0
say ""
say "gpu_check summary ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo 'unknown GPU'))"
say "$(printf '%-18s %-26s %8s' step status seconds)"
for i in "${!names[@]}"; do
  say "$(printf '%-18s %-26s %8s' "${names[$i]}" "${statuses[$i]}" "${times[$i]}")"
  [ "${statuses[$i]}" = "ok" ] || failed=1
done
say "$(printf '%-18s %-26s %8s' total '' "$total")"
if [ -f "$out/bench_gpu.md" ]; then
  say ""
  tee -a "$log" <"$out/bench_gpu.md"
fi
say "log: $log"
exit $failed
