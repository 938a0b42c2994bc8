#!/usr/bin/env bash
# test_emu_expand: `spladex expand --device cuda` end to end on the EMULATED device (the CUDA
# backend's own source run on the CPU: libspladex_cuda_emu.so of tests/emu, docs/RELIABILITY.md),
# not a GPU: the CLI's CUDA path (the device opened through SPLADEX_CUDA_LIB, the canary against
# the CPU encoder, batches pipelined, shards written) on each route the backend has:
#   default        fp16, fp32 activations, fp32 attention, chunked decoder
#   16-bit route   fp16 and bf16, fused decoder, tensor-core attention, fp16/bf16 activations
#   the same in bf16 with the sm_90a decoder (wgmma, emulated)
# Each run must pass its canary (one agreement line naming the emulated device, recorded in
# job.json), verify, and hold the CPU job's doc ids with every row within the GPU test's bound
# (0.005 fp16, 0.04 bf16, x the row's largest CPU weight; tests/sh/shards.py near-rows). Then
# `spladex selftest --device cuda` (default route; one timed batch of 2048 tokens) must agree.
# Two more jobs must be refused before any work (an unknown route; wgmma below compute 9.0).
# Exits 77 (skipped) when the emulated device was not built (no CUDA backend, or a sanitizer build).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

EMU=${SPLADEX_BUILD_DIR:-build}/libspladex_cuda_emu.so
[ -f "$EMU" ] || { echo "test_emu_expand: $EMU not built: skipped"; exit 77; }
export SPLADEX_CUDA_LIB=$EMU

python3 scripts/make_sample_corpus.py --docs 40 "$TMP/in.tsv" 2>/dev/null || fail "make_sample_corpus"
run=("$BIN" expand --model "$MODEL" "${MODEL_FLAGS[@]}" --input "$TMP/in.tsv" --max-length 64
     --shard-size 16)
"${run[@]}" --device cpu --output "$TMP/cpu" 2>"$TMP/err" || fail "CPU expand: $(cat "$TMP/err")"

# NAME PRECISION BOUND [VAR=VALUE...]: one emulated CUDA job, checked as above.
device_job() {
  local name=$1 precision=$2 bound=$3
  shift 3
  env "$@" "${run[@]}" --device cuda --precision "$precision" --output "$TMP/$name" \
    2>"$TMP/$name.err" || fail "$name: expand --device cuda: $(cat "$TMP/$name.err")"
  grep -q 'canary: 16 passages agree with the CPU encoder' "$TMP/$name.err" ||
    fail "$name: no canary agreement: $(cat "$TMP/$name.err")"
  grep -q 'cuda:0 CUDA EMULATED on the CPU' "$TMP/$name.err" ||
    fail "$name: the job does not name the emulated device: $(cat "$TMP/$name.err")"
  python3 - "$TMP/$name/job.json" <<'PY' || fail "$name: job.json's canary: $(cat "$TMP/$name/job.json")"
import json, sys
c = json.load(open(sys.argv[1]))["canary"]
assert c["passages"] == 16 and c["relative"] is True and "EMULATED" in c["device"], c
PY
  "$BIN" verify "$TMP/$name" >/dev/null 2>"$TMP/$name.verify" ||
    fail "$name: verify: $(cat "$TMP/$name.verify")"
  python3 tests/sh/shards.py near-rows "$TMP/cpu" "$TMP/$name" "$bound" ||
    fail "$name: rows differ from the CPU job's"
  echo "test_emu_expand: $name ok"
}

device_job default-fp16 fp16 0.005
device_job lp-fp16 fp16 0.005 SPLADEX_CUDA_DECODER=fused SPLADEX_CUDA_ATTENTION=mma \
  SPLADEX_CUDA_ACTIVATIONS=lp
device_job lp-bf16 bf16 0.04 SPLADEX_CUDA_DECODER=fused SPLADEX_CUDA_ATTENTION=mma \
  SPLADEX_CUDA_ACTIVATIONS=lp
device_job wgmma-bf16 bf16 0.04 SPLADEX_CUDA_DECODER=wgmma SPLADEX_CUDA_ATTENTION=mma \
  SPLADEX_CUDA_ACTIVATIONS=lp
# What the routes refuse, before any work: an unknown route, and the sm_90a decoder on a device
# below compute capability 9.0 (the emulated device told to report 8.0). Neither job may run.
# REFUSED NAME MESSAGE VAR=VALUE...: the job must fail, saying MESSAGE, with no shard written.
refused() {
  local name=$1 message=$2
  shift 2
  env "$@" "${run[@]}" --device cuda --precision fp16 --output "$TMP/$name" >/dev/null \
    2>"$TMP/$name.err" && fail "$name: expand --device cuda ran: $(cat "$TMP/$name.err")"
  grep -qF "$message" "$TMP/$name.err" || fail "$name: no '$message' in: $(cat "$TMP/$name.err")"
  ! ls "$TMP/$name"/*.h5 >/dev/null 2>&1 || fail "$name: shards written"
  echo "test_emu_expand: $name refused ok"
}
refused bad-route "SPLADEX_CUDA_DECODER=tiled: expected chunked, fused or wgmma" \
  SPLADEX_CUDA_DECODER=tiled
refused wgmma-sm80 "SPLADEX_CUDA_DECODER=wgmma: device 0 has compute capability 8.0; wgmma needs 9.0" \
  SPLADEX_CUDA_EMU_CC=8.0 SPLADEX_CUDA_DECODER=wgmma
"$BIN" selftest --model "$MODEL" --device cuda --batches 1 --batch-tokens 2048 >"$TMP/self.out" \
  2>"$TMP/self.err" || fail "selftest --device cuda: $(cat "$TMP/self.out" "$TMP/self.err")"
grep -q '^agreement: OK' "$TMP/self.out" && grep -q 'CUDA EMULATED on the CPU' "$TMP/self.out" &&
  grep -q '^speed: 1 batches' "$TMP/self.out" || fail "selftest: $(cat "$TMP/self.out")"
echo "test_emu_expand: selftest ok"
echo "test_emu_expand: ok"
