#!/usr/bin/env bash
# gpu_check.sh: everything that needs a GPU, in one command, on a machine with a GPU, CUDA 13,
# cmake, and python3 with numpy, h5py, torch and transformers; no network.
#   0. the build: when gpu-bundle.tar.xz is here (made by scripts/gpu_bundle.sh on a machine with
#      the C libraries; the GPU image lacks HDF5/OpenBLAS/utf8proc/cJSON) it is unpacked into
#      build-gpu/ and used if its spladex starts; else spladex is built here for sm_90 (Release,
#      override with GPU_CHECK_ARCHS), which needs those libraries on this machine
#   1. the CUDA libraries: when the loader does not know libcublas.so.13, the directories of the
#      CUDA toolkit or of the pip nvidia-* packages that hold it go on LD_LIBRARY_PATH
#   2. the GPU tests, each of which must pass on the device (exit 77 = no device is a failure
#      here): test_ops; test_encoder_gpu with the chunked decoder (the default) and again with
#      SPLADEX_CUDA_DECODER=fused; test_export_gpu (export ciff --device cuda == cpu, bytes)
#   3. compute-sanitizer --tool memcheck on test_ops --small, with SPLADEX_CUDA_SYNC=1
#   4. benchmarks/bench_gpu.py: spladex (both decoder routes) against HF transformers fp16
#      (naver's formula) on the same GPU, efficient-splade doc config with random weights,
#      200,000 synthetic passages
#   5. benchmarks/bench_export.py: CIFF export transposed on the CPU vs on the GPU (cuSPARSE)
#   6. ctest (the CPU tests), only when spladex was built here (CI runs them anyway)
# Each step has a time limit, and all of it stays under 8 minutes (GPU_CHECK_BUDGET seconds).
# Writes gpu_check.log and the benchmarks' results to $OUT if set, else to
# build-gpu/gpu-check-out. Prints a final table; exits non-zero if any step failed.
# Usage: scripts/gpu_check.sh [--passages N]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$root/build-gpu
out=${OUT:-$build/gpu-check-out}
passages=200000
[ "${1:-}" = "--passages" ] && passages=$2
archs=${GPU_CHECK_ARCHS:-90}
budget=${GPU_CHECK_BUDGET:-470}
start=$(date +%s)
jobs=$(nproc)
prebuilt=0
if [ -f gpu-bundle.tar.xz ]; then
  rm -rf "$build"
  tar -xJf gpu-bundle.tar.xz
  if "$build/spladex" --version >/dev/null 2>&1; then prebuilt=1; fi
fi
mkdir -p "$out"
log=$out/gpu_check.log
: >"$log"
work=$out/work
mkdir -p "$work"

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

if ((prebuilt)); then
  say "gpu_check: using the prebuilt gpu-bundle.tar.xz ($("$build/spladex" --version))"
else
  [ -f gpu-bundle.tar.xz ] && say "gpu_check: the prebuilt spladex does not start here: $("$build/spladex" --version 2>&1 | head -3)"
  step "configure" 60 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSPLADEX_CUDA_ARCHS="$archs"
  step "build" 240 cmake --build "$build" -j"$jobs"
  if ! grep -q 'SPLADEX_HAVE_CUDA' "$build/CMakeFiles/spladex_core.dir/flags.make" 2>/dev/null; then
    say "gpu_check: WARNING: the build has no CUDA backend (nvcc not found?)"
  fi
fi

# The CUDA 13 libraries that libspladex_cuda.so links (cudart, cuBLAS/cuBLASLt, cuSPARSE,
# nvJitLink), when the loader does not find them by itself.
if ! ldconfig -p 2>/dev/null | grep -q 'libcublas\.so\.13'; then
  cuda_dirs=""
  for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcusparse.so.12 libnvJitLink.so.13; do
    hit=$(find /usr/local/cuda*/lib64/ /usr/local/cuda*/targets/x86_64-linux/lib/ /usr/local/lib/ \
            $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null) \
            -name "$lib" 2>/dev/null | head -1 || true)
    if [ -n "$hit" ]; then
      d=$(dirname "$hit")
      case ":$cuda_dirs:" in *":$d:"*) ;; *) cuda_dirs=${cuda_dirs:+$cuda_dirs:}$d ;; esac
    else
      say "gpu_check: WARNING: $lib not found"
    fi
  done
  export LD_LIBRARY_PATH=$cuda_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  say "gpu_check: LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
fi
export SPLADEX_BIN=$build/spladex SPLADEX_SOURCE_DIR=$root

# Random-weight models: the tiny ones for test_encoder_gpu, efficient-splade for the benchmark.
step "models" 90 bash -c "
  set -e
  for p in tiny-distilbert tiny-bert; do
    [ -f tests/fixtures/generated/\$p/model.safetensors ] || python3 scripts/make_random_model.py \$p tests/fixtures/generated/\$p
  done
  [ -f '$work/efficient-splade/model.safetensors' ] || python3 scripts/make_random_model.py efficient-splade '$work/efficient-splade'
"

# The GPU tests run directly, because here a skip (77: no device) must count as a failure.
step "test_ops" 60 "$build/test_ops"
step "test_encoder_gpu" 100 "$build/test_encoder_gpu"
step "test_encoder_gpu fused" 100 env SPLADEX_CUDA_DECODER=fused "$build/test_encoder_gpu"
step "test_export_gpu" 60 "$build/test_export_gpu"

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
  --model "$work/efficient-splade" --passages "$passages" --hf-seconds 40 --work "$work" --out "$out"

step "bench_export" 90 python3 benchmarks/bench_export.py --docs 300000 --templates 1 --formats ciff \
  --device cpu cuda --memory 2G 512M --bin "$build/spladex" --workdir "$work/export"

if ((!prebuilt)); then
  step "ctest" 150 ctest --test-dir "$build" --output-on-failure -j4 \
    -E '^(test_ops|test_encoder_gpu|test_export_gpu)$'
fi

total=$(($(date +%s) - start))
failed=0
say ""
say "gpu_check summary ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo 'unknown GPU'))"
say "$(printf '%-24s %-30s %8s' step status seconds)"
for i in "${!names[@]}"; do
  say "$(printf '%-24s %-30s %8s' "${names[$i]}" "${statuses[$i]}" "${times[$i]}")"
  [ "${statuses[$i]}" = "ok" ] || failed=1
done
say "$(printf '%-24s %-30s %8s' total '' "$total")"
if [ -f "$out/bench_gpu.md" ]; then
  say ""
  tee -a "$log" <"$out/bench_gpu.md"
fi
say "log: $log"
exit $failed
