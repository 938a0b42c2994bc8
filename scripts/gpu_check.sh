#!/usr/bin/env bash
# gpu_check.sh: everything that needs a GPU, in one command, on a machine with a GPU, CUDA 13,
# cmake, and python3 with numpy, h5py, torch and transformers; no network. The steps run in
# groups, most valuable first, each group with a time cap, all of it within GPU_CHECK_BUDGET
# seconds (default 480); a step that no longer fits is skipped and the summary still printed.
#   setup       the build: when gpu-bundle.tar.xz is here (made by scripts/gpu_bundle.sh on a
#               machine with the C libraries; the GPU image lacks HDF5/OpenBLAS/utf8proc/cJSON)
#               it is unpacked into build-gpu/ and used if its spladex starts; else spladex is
#               built here for sm_90a (Release, override with GPU_CHECK_ARCHS), which needs those
#               libraries on this machine. The CUDA libraries that libspladex_cuda.so links
#               (cudart, cuBLAS/cuBLASLt, cuSPARSE, nvJitLink), when the loader does not know
#               them, are looked for in the CUDA toolkit and the pip nvidia-* packages; their
#               directories go on LD_LIBRARY_PATH of the spladex and test processes only, never
#               of python/torch. Random-weight models: the tiny ones for test_encoder_gpu,
#               efficient-splade for the benchmarks
#   correctness (cap 200 s) the GPU tests, each of which must pass on the device (exit 77 = no
#               device is a failure here): test_ops_gpu; test_attention_gpu (the tensor-core
#               attention against its twin); test_encoder_gpu with the chunked
#               decoder, again with SPLADEX_CUDA_DECODER=fused, and again on the 16-bit route
#               (SPLADEX_CUDA_ATTENTION=mma SPLADEX_CUDA_ACTIVATIONS=lp, chunked decoder: the
#               route tests/test_precision_emulation.c emulates), and on the 16-bit route with
#               the sm_90a decoder (SPLADEX_CUDA_DECODER=wgmma); test_export_gpu (export ciff
#               --device cuda == cpu, bytes); compute-sanitizer memcheck on test_ops_gpu --small
#               and test_attention_gpu --small with SPLADEX_CUDA_SYNC=1
#   ops         (cap 70 s) test_ops_gpu --bench: each op checked, then timed at real shapes;
#               test_attention_gpu --bench: the tensor-core attention against the fp32 one;
#               both tables are kept in OUT/ops_bench.txt
#   throughput  (cap 110 s) `spladex selftest --device cuda` (device against CPU on built-in
#               passages; the efficient-splade random model, and models/splade-tiny when it is
#               here: carry it), output in OUT/selftest.txt; benchmarks/bench_gpu.py --only
#               spladex: spladex expand on the GPU, both decoder routes, fused+mma+lp and
#               wgmma+mma+lp, at N/4
#               and N passages
#               (--passages N, default 200000); the slope between the two sizes is the rate
#               without start-up; the "canary:" lines of those runs go into the summary
#   clocks      (cap 10 s) nvidia-smi -q -d CLOCK,POWER,PERFORMANCE (clocks, throttle reasons)
#   baselines   (the rest) bench_gpu.py --only hf: HF transformers fp16 and bf16 on the same
#               GPU and corpus (naver's formula), merged into the same bench_gpu.json/md;
#               benchmarks/bench_export.py: CIFF export transposed on the CPU vs on the GPU
#   ctest       (the rest; only when spladex was built here) the CPU tests (not the `emu` ones:
#               the emulated device is for machines without a GPU)
# The first three groups take at most 380 s after the setup.
# Large files (the 265 MB model, the ids files, spladex's shards, each step's full output) go to
# GPU_CHECK_WORK (default /tmp/spladex-gpu-work); $OUT (else build-gpu/gpu-check-out) receives
# only small files: gpu_check.log, ops_bench.txt, selftest.txt, bench_gpu.json, bench_gpu.md,
# bench_export.txt. A failed step's last 40 lines are printed at once; the summary comes last.
# Exits non-zero if any step did not pass (a skipped one included).
# Usage: scripts/gpu_check.sh [--passages N] [--only GROUP,...]   (GROUPs as above, not setup)
#   with the device tool: run(carry=["gpu-bundle.tar.xz", "models/splade-tiny"],
#                             command="scripts/gpu_check.sh", timeout_s=540)
# Environment: GPU_CHECK_BUDGET (s), GPU_CHECK_WORK, GPU_CHECK_ARCHS, GPU_CHECK_PYTHON (python3),
# GPU_CHECK_EXPORT_DOCS (300000).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$root/build-gpu
out=${OUT:-$build/gpu-check-out}
work=${GPU_CHECK_WORK:-/tmp/spladex-gpu-work}
py=${GPU_CHECK_PYTHON:-python3}
archs=${GPU_CHECK_ARCHS:-90a}
budget=${GPU_CHECK_BUDGET:-480}
passages=200000
only=correctness,ops,throughput,clocks,baselines,ctest
while (($#)); do
  case $1 in
    --passages) passages=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for g in ${only//,/ }; do
  case $g in correctness | ops | throughput | clocks | baselines | ctest) ;;
    *) echo "gpu_check: unknown group '$g'" >&2; exit 2 ;;
  esac
done
small=$((passages / 4))
start=$(date +%s)
budget_end=$((start + budget))
group_end=$budget_end
prebuilt=0
# The bundle first: unpacking replaces build-gpu/, where $OUT is by default.
if [ -f gpu-bundle.tar.xz ]; then
  rm -rf "$build"
  tar -xJf gpu-bundle.tar.xz
  if "$build/spladex" --version >/dev/null 2>&1; then prebuilt=1; fi
fi
mkdir -p "$out" "$work/steps"
case "$work/" in "$out/"*) echo "gpu_check: GPU_CHECK_WORK must not be under \$OUT" >&2; exit 2 ;; esac
log=$out/gpu_check.log
: >"$log"

names=() statuses=() times=()
last_output=""

say() { echo "$*" | tee -a "$log"; }
wanted() { case ",$only," in *",$1,"*) return 0 ;; esac; return 1; }

# group NAME CAP_SECONDS: the steps after it end by CAP seconds from now (and within the budget).
group() {
  local now
  now=$(date +%s)
  group_end=$((now + $2))
  if ((group_end > budget_end)); then group_end=$budget_end; fi
  say ""
  say "==== $1 (at $((now - start)) s, ends by $((group_end - start)) s of $budget s)"
}

# step NAME CAP_SECONDS COMMAND...: runs COMMAND under `timeout` (the cap, or what is left of the
# group or of the budget if less; the command sees it as GPU_CHECK_STEP_LIMIT), its output in
# $work/steps (last_output names the file) and in the log, records status and seconds, prints
# the tail of a failed step's output. Never aborts the script.
step() {
  local name=$1 cap=$2
  shift 2
  local now limit t0 rc dt st lines
  now=$(date +%s)
  limit=$cap
  if ((group_end - now < limit)); then limit=$((group_end - now)); fi
  last_output=$work/steps/$(printf '%02d' "${#names[@]}")-$(printf '%s' "$name" | tr -c 'A-Za-z0-9_.-' '_').txt
  : >"$last_output"
  if ((limit < 5)); then
    if ((budget_end - now < 5)); then st="skipped (budget)"; else st="skipped (group time)"; fi
    say "== $name: $st"
    names+=("$name"); statuses+=("$st"); times+=(0)
    return 0
  fi
  say "== $name (limit ${limit}s): $*"
  t0=$(date +%s)
  set +e
  timeout --kill-after=10 "$limit" env GPU_CHECK_STEP_LIMIT="$limit" "$@" >"$last_output" 2>&1
  rc=$?
  set -e
  dt=$(($(date +%s) - t0))
  lines=$(wc -l <"$last_output")
  if ((lines > 3000)); then  # the log must come back (16 MiB a file): head and tail of a flood
    { head -n 500 "$last_output"; echo "[... $((lines - 2500)) lines left out ...]"
      tail -n 2000 "$last_output"; } | cut -c -2000 >>"$log"
  else
    cut -c -2000 "$last_output" >>"$log"
  fi
  case $rc in
    0) st="ok" ;;
    124 | 137) st="TIMEOUT" ;;
    77) st="NOT RUN (77: no device)" ;;
    *) st="FAILED (exit $rc)" ;;
  esac
  say "   -> $st in ${dt}s"
  if ((rc != 0)); then
    echo "   -- last 40 lines of $name:"
    tail -n 40 "$last_output" | cut -c -400 | sed 's/^/   | /'
  fi
  names+=("$name"); statuses+=("$st"); times+=("$dt")
  return 0
}

# note NAME STATUS: a step that could not even start.
note() {
  say "== $1: $2"
  names+=("$1"); statuses+=("$2"); times+=(0)
}

say "gpu_check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), budget $budget s, groups $only"
say "gpu_check: work directory $work, results in $out"
gpu_line="no nvidia-smi"
if command -v nvidia-smi >/dev/null; then
  gpu_line=$(timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm \
               --format=csv,noheader 2>&1 | head -n 4 || true)
fi
say "gpu_check: GPU: ${gpu_line:-nvidia-smi printed nothing}"

group setup "$budget"
if ((prebuilt)); then
  say "gpu_check: using the prebuilt gpu-bundle.tar.xz ($("$build/spladex" --version))"
else
  if [ -f gpu-bundle.tar.xz ]; then
    say "gpu_check: the prebuilt spladex does not start here: $("$build/spladex" --version 2>&1 | head -3)"
  fi
  step "configure" 60 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSPLADEX_CUDA_ARCHS="$archs"
  step "build" 240 cmake --build "$build" -j"$(nproc)"
  if ! grep -q 'SPLADEX_HAVE_CUDA' "$build/CMakeFiles/spladex_core.dir/flags.make" 2>/dev/null; then
    say "gpu_check: WARNING: the build has no CUDA backend (nvcc not found?)"
  fi
fi

# The CUDA 13 libraries that libspladex_cuda.so links, when the loader does not find them by
# itself: their directories go into cuda_dirs, which only the spladex/test commands see (spx).
cuda_dirs=""
known=$(ldconfig -p 2>/dev/null || true)
missing=()
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcusparse.so.12 libnvJitLink.so.13; do
  case $known in *" $lib "*) ;; *) missing+=("$lib") ;; esac
done
if ((${#missing[@]})); then
  # shellcheck disable=SC2046
  hits=$(find /usr/local/cuda*/lib64/ /usr/local/cuda*/targets/x86_64-linux/lib/ /usr/local/lib/ \
           $("$py" -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null) \
           -name 'lib*.so.1[0-9]' 2>/dev/null || true)
  for lib in "${missing[@]}"; do
    hit=$(grep -m1 "/$lib\$" <<<"$hits" || true)
    if [ -n "$hit" ]; then
      d=$(dirname "$hit")
      case ":$cuda_dirs:" in *":$d:"*) ;; *) cuda_dirs=${cuda_dirs:+$cuda_dirs:}$d ;; esac
    else
      say "gpu_check: WARNING: $lib not found"
    fi
  done
fi
spx=(env)
if [ -n "$cuda_dirs" ]; then
  spx=(env "LD_LIBRARY_PATH=$cuda_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  say "gpu_check: the spladex and test processes get LD_LIBRARY_PATH=$cuda_dirs (first)"
fi
# bench_export.py runs spladex itself: it gets a wrapper that adds the libraries.
mkdir -p "$work/bin"
{ echo '#!/usr/bin/env bash'; printf 'exec'; printf ' %q' "${spx[@]}" "$build/spladex"
  echo ' "$@"'; } >"$work/bin/spladex"
chmod +x "$work/bin/spladex"
export SPLADEX_BIN=$build/spladex SPLADEX_SOURCE_DIR=$root
ops_bin=$build/test_ops_gpu
[ -x "$ops_bin" ] || ! [ -x "$build/test_ops" ] || ops_bin=$build/test_ops
model=$work/efficient-splade

step "models" 90 bash -c "
  set -e
  for p in tiny-distilbert tiny-bert tiny-bert-v105879 tiny-roberta; do
    [ -f tests/fixtures/generated/\$p/model.safetensors ] || '$py' scripts/make_random_model.py \$p tests/fixtures/generated/\$p
  done
  [ -f '$model/model.safetensors' ] || '$py' scripts/make_random_model.py efficient-splade '$model'
  # a sum-pooled SparseEncoder, which test_encoder_gpu expects the CUDA encoder to refuse
  [ -f tests/fixtures/generated/st-sum/modules.json ] || '$py' -c 'import sys; sys.path.insert(0, \"scripts\"); import gen_sparse_encoder_fixtures as g; g.make_st_dir(\"tests/fixtures/generated/st-sum\", g.base_model()[0], \"sum\", \"relu\")' || echo 'st-sum not made (tokenizers missing?): its CUDA refusal is not checked'
"

if wanted correctness; then
  group correctness 200
  # run directly, not through ctest: here a skip (77: no device) must count as a failure
  step "test_ops_gpu" 40 "${spx[@]}" "$ops_bin"
  step "test_attention_gpu" 30 "${spx[@]}" "$build/test_attention_gpu"
  step "test_encoder_gpu chunked" 50 "${spx[@]}" SPLADEX_CUDA_DECODER=chunked "$build/test_encoder_gpu"
  step "test_encoder_gpu fused" 50 "${spx[@]}" SPLADEX_CUDA_DECODER=fused "$build/test_encoder_gpu"
  step "test_encoder_gpu mma+lp" 50 "${spx[@]}" SPLADEX_CUDA_ATTENTION=mma SPLADEX_CUDA_ACTIVATIONS=lp \
    "$build/test_encoder_gpu"
  step "test_encoder_gpu wgmma+mma+lp" 50 "${spx[@]}" SPLADEX_CUDA_DECODER=wgmma SPLADEX_CUDA_ATTENTION=mma \
    SPLADEX_CUDA_ACTIVATIONS=lp "$build/test_encoder_gpu"
  step "test_export_gpu" 30 "${spx[@]}" "$build/test_export_gpu"
  cs=""
  for c in "$(command -v compute-sanitizer || true)" /usr/local/cuda/bin/compute-sanitizer \
           /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
    if [ -n "$c" ] && [ -x "$c" ]; then cs=$c; break; fi
  done
  if [ -n "$cs" ]; then
    step "memcheck test_ops_gpu --small" 60 "${spx[@]}" SPLADEX_CUDA_SYNC=1 "$cs" --tool memcheck \
      --error-exitcode 99 --leak-check full "$ops_bin" --small
    step "memcheck test_attention_gpu --small" 40 "${spx[@]}" SPLADEX_CUDA_SYNC=1 "$cs" --tool memcheck \
      --error-exitcode 99 --leak-check full "$build/test_attention_gpu" --small
  else
    note "memcheck test_ops_gpu --small" "FAILED (no compute-sanitizer)"
    note "memcheck test_attention_gpu --small" "FAILED (no compute-sanitizer)"
  fi
fi

if wanted ops; then
  group ops 70
  step "test_ops_gpu --bench" 40 "${spx[@]}" "$ops_bin" --bench
  [ ! -s "$last_output" ] || tail -n 400 "$last_output" >"$out/ops_bench.txt"
  step "test_attention_gpu --bench" 30 "${spx[@]}" "$build/test_attention_gpu" --bench
  [ ! -s "$last_output" ] || grep '^bench' "$last_output" >>"$out/ops_bench.txt" || true
fi

canary_lines=""
if wanted throughput; then
  group throughput 110
  step "selftest efficient-splade" 30 "${spx[@]}" "$build/spladex" selftest --model "$model" --device cuda
  { echo "== spladex selftest --model efficient-splade (random weights) --device cuda"
    tail -n 200 "$last_output"; } >"$out/selftest.txt"
  if [ -f models/splade-tiny/config.json ]; then
    step "selftest splade-tiny" 20 "${spx[@]}" "$build/spladex" selftest --model models/splade-tiny --device cuda
    { echo "== spladex selftest --model models/splade-tiny --device cuda"
      tail -n 200 "$last_output"; } >>"$out/selftest.txt"
  fi
  step "bench_gpu spladex" 100 "$py" benchmarks/bench_gpu.py --only spladex --spladex "$build/spladex" \
    --model "$model" --passages "$small,$passages" --cuda-libs "$cuda_dirs" --work "$work/bench" --out "$out"
  canary_lines=$(grep -h '^canary (' "$last_output" | head -8 || true)
fi

if wanted clocks; then
  group clocks 10
  step "nvidia-smi clocks" 10 nvidia-smi -q -d CLOCK,POWER,PERFORMANCE
  clocks_output=$last_output
fi

if wanted baselines; then
  group baselines "$budget"
  step "bench_gpu hf" 100 "$py" benchmarks/bench_gpu.py --only hf --model "$model" \
    --passages "$small,$passages" --hf-dtypes fp16,bf16 --hf-seconds 20 --cuda-libs "$cuda_dirs" \
    --work "$work/bench" --out "$out"
  step "bench_export" 90 "$py" benchmarks/bench_export.py --docs "${GPU_CHECK_EXPORT_DOCS:-300000}" \
    --templates 1 --formats ciff \
    --device cpu cuda --memory 2G 512M --bin "$work/bin/spladex" --workdir "$work/export"
  [ ! -s "$last_output" ] || tail -n 100 "$last_output" >"$out/bench_export.txt"
fi

if wanted ctest && ((!prebuilt)); then
  group ctest "$budget"
  step "ctest" 150 "${spx[@]}" ctest --test-dir "$build" --output-on-failure -j4 -L '^c$' -LE 'gpu|emu'
fi

# The summary: the tables first, the step table last (the device tool returns stdout's end).
total=$(($(date +%s) - start))
say ""
say "==== gpu_check summary ($(head -n 1 <<<"$gpu_line"))"
if [ -s "$out/ops_bench.txt" ]; then
  say "-- test_ops_gpu --bench, test_attention_gpu --bench (the last 30 lines; ops_bench.txt has more)"
  tail -n 30 "$out/ops_bench.txt" | tee -a "$log"
fi
if [ -s "$out/selftest.txt" ]; then
  say "-- spladex selftest (selftest.txt has all of it)"
  grep -v '^==' "$out/selftest.txt" | tail -n 12 | tee -a "$log"
fi
if wanted throughput; then
  say "-- canary lines of the spladex expand runs"
  say "${canary_lines:-(none printed)}"
fi
if [ -n "${clocks_output:-}" ] && [ -s "$clocks_output" ]; then
  say "-- nvidia-smi after the throughput runs (all of it in the log)"
  grep -E '^ *(SM|Graphics|Memory|Power Draw|Average Power Draw|Instantaneous Power Draw|Current Power Limit) +:|: Active' \
    "$clocks_output" | head -n 16 | tee -a "$log" || true
fi
if [ -f "$out/bench_gpu.md" ]; then
  say "-- benchmarks/bench_gpu.py"
  tee -a "$log" <"$out/bench_gpu.md"
fi
if [ -s "$out/bench_export.txt" ]; then
  say "-- benchmarks/bench_export.py"
  grep -E '^\||identical' "$out/bench_export.txt" | tee -a "$log" || true
fi
failed=0
say ""
say "$(printf '%-32s %-28s %8s' step status seconds)"
for i in "${!names[@]}"; do
  say "$(printf '%-32s %-28s %8s' "${names[$i]}" "${statuses[$i]}" "${times[$i]}")"
  [ "${statuses[$i]}" = "ok" ] || failed=1
done
say "$(printf '%-32s %-28s %8s' total "(budget $budget)" "$total")"
files=$(find "$out" -type f | wc -l)
big=$(find "$out" -type f -size +16M | wc -l)
say "gpu_check: \$OUT has $files files, $(du -sh "$out" | cut -f1)$( ((big)) && echo ", $big over 16 MiB")$( ((files > 8)) && echo ' (more than the 8 the device tool returns)'); log: $log"
exit $failed
