#!/usr/bin/env bash
# test_canary: the device check of `spladex expand` (host/canary.h) and `spladex selftest`, on the
# CPU. No GPU here, so the test hook SPLADEX_TEST_CANARY_FAULT makes a CPU job run its canary
# against itself, and corrupts the "device" side as a wrong GPU would:
#   none             the canary agrees: one line on stderr, and job.json records it
#   scale/drop/nan   passage D's largest weight x1.5 / removed / NaN: expand stops before it
#                    creates anything, naming the passage (its id and number) and that very term
#                    (the largest of the passage, from `spladex encode`), both weights, the bound
#   swap             passages D and D+1 exchanged: the first of them is named
#   --canary 0       no check at all, even with a fault injected
# and, without the hook: a CPU job runs no canary; `--device auto` with no usable CUDA device says
# so in one loud line; `--device cuda` without a device fails before the model is even read;
# `selftest --device cpu` passes and says it is a smoke test.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

python3 scripts/make_sample_corpus.py --docs 24 "$TMP/in.tsv" 2>/dev/null || fail "make_sample_corpus"
run=("$BIN" expand --model "$MODEL" "${MODEL_FLAGS[@]}" --input "$TMP/in.tsv" --max-length 64
     --shard-size 10 --device cpu)

# A CPU job: no canary, no record.
"${run[@]}" --output "$TMP/plain" 2>"$TMP/err" || fail "plain expand: $(cat "$TMP/err")"
grep -q canary "$TMP/err" && fail "a CPU job ran a canary: $(cat "$TMP/err")"
python3 - "$TMP/plain/job.json" <<'EOF' || fail "a CPU job recorded a canary"
import json, sys
assert "canary" not in json.load(open(sys.argv[1]))
EOF

# The hook with no fault: agreement, said once, recorded.
SPLADEX_TEST_CANARY_FAULT=none "${run[@]}" --output "$TMP/ok" 2>"$TMP/err" ||
  fail "expand with the canary: $(cat "$TMP/err")"
[ "$(grep -c 'canary: 16 passages agree with the CPU encoder: max absolute weight error 0 (bound 0.0001)' "$TMP/err")" = 1 ] ||
  fail "no agreement line: $(cat "$TMP/err")"
python3 - "$TMP/ok/job.json" <<'EOF' || fail "job.json lacks the canary's record: $(cat "$TMP/ok/job.json")"
import json, sys
c = json.load(open(sys.argv[1]))["canary"]
assert c["passages"] == 16 and c["max_error"] == 0 and c["relative"] is False, c
assert c["bound"] == 1e-4 and c["top64_agreement"] == 1 and c["device"].startswith("cpu fp32"), c
EOF
"$BIN" verify "$TMP/ok" >/dev/null || fail "verify after a canary run"
# A rerun of the finished job keeps its record (and its totals).
SPLADEX_TEST_CANARY_FAULT=none "${run[@]}" --output "$TMP/ok" 2>"$TMP/err" || fail "rerun: $(cat "$TMP/err")"
python3 - "$TMP/ok/job.json" <<'EOF' || fail "rerun lost the record or the totals"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["canary"]["passages"] == 16 and j["n_docs_total"] == 24, j
EOF
# A shorter input than --canary: all of it.
head -n 5 "$TMP/in.tsv" > "$TMP/five.tsv"
SPLADEX_TEST_CANARY_FAULT=none "$BIN" expand --model "$MODEL" "${MODEL_FLAGS[@]}" --input "$TMP/five.tsv" \
  --max-length 64 --device cpu --output "$TMP/five" 2>"$TMP/err" || fail "five: $(cat "$TMP/err")"
grep -q 'canary: 5 passages agree' "$TMP/err" || fail "five: $(cat "$TMP/err")"

# The largest term of passage D (0-based) as spladex encode computes it, first id on ties.
top_term() {
  sed -n "$(($1 + 1))p" "$TMP/in.tsv" | cut -f2- |
    "$BIN" encode --model "$MODEL" "${MODEL_FLAGS[@]}" --max-length 64 --json --device cpu |
    python3 -c 'import json,sys; v=json.loads(sys.stdin.readline())["vector"]; print(max(v, key=lambda t: v[t]))'
}
doc_id() { sed -n "$(($1 + 1))p" "$TMP/in.tsv" | cut -f1; }

for fault in scale:2 drop:4 nan:0 swap:1; do
  d=${fault#*:}
  SPLADEX_TEST_CANARY_FAULT=$fault "${run[@]}" --output "$TMP/bad-$d" 2>"$TMP/err"
  rc=$?
  [ $rc = 1 ] || fail "$fault: exit $rc: $(cat "$TMP/err")"
  [ -e "$TMP/bad-$d" ] && fail "$fault: the output directory was created"
  msg=$(grep '^spladex expand: canary: ' "$TMP/err") || fail "$fault: no canary message: $(cat "$TMP/err")"
  want="on passage '$(doc_id "$d")' (passage $((d + 1)) of 16), term '"
  [[ $msg == *"$want"* ]] || fail "$fault: '$want' not in: $msg"
  [[ $msg == *"exceeds the bound 0.0001 (0.0001 absolute)"* ]] || fail "$fault: no bound in: $msg"
  [[ $msg == *"Nothing was written. Check this node with \`spladex selftest --model $MODEL --device cpu\`"* ]] ||
    fail "$fault: no advice in: $msg"
  if [ "${fault%%:*}" != swap ]; then
    term=$(top_term "$d")
    [[ $msg == *"term '$term' (id "* ]] || fail "$fault: the term should be '$term': $msg"
  fi
  echo "ok: $fault -> $msg" | cut -c1-200
done
SPLADEX_TEST_CANARY_FAULT=nan:0 "${run[@]}" --output "$TMP/off" --canary 0 2>"$TMP/err" ||
  fail "--canary 0 still checked: $(cat "$TMP/err")"
"$BIN" expand --model "$MODEL" --input "$TMP/in.tsv" --output "$TMP/x" --canary -1 2>/dev/null
[ $? = 2 ] || fail "--canary -1 accepted"

# --device auto without a usable CUDA device: one loud line saying what to pass.
if ! "$BIN" encode --model "$MODEL" --device cuda hello >/dev/null 2>"$TMP/cuda-err"; then
  "$BIN" expand --model "$MODEL" "${MODEL_FLAGS[@]}" --input "$TMP/five.tsv" --max-length 64 \
    --output "$TMP/auto" --device auto --quiet 2>"$TMP/err" || fail "auto: $(cat "$TMP/err")"
  [ "$(grep -c 'WARNING: --device auto found no usable CUDA device' "$TMP/err")" = 1 ] &&
    grep -q 'running on the CPU. Pass --device cpu to accept the CPU, or --device cuda to require a GPU.' "$TMP/err" ||
    fail "auto fell back without the loud line: $(cat "$TMP/err")"
  # --device cuda fails before the model is read: a model directory that does not exist is not
  # what it complains about
  "$BIN" expand --model "$TMP/no-such-model" --input "$TMP/five.tsv" --output "$TMP/cuda" \
    --device cuda 2>"$TMP/err"
  rc=$?
  [ $rc = 1 ] && grep -q '^spladex expand: --device cuda: ' "$TMP/err" && ! grep -q no-such-model "$TMP/err" ||
    fail "--device cuda without a device: rc $rc: $(cat "$TMP/err")"
  "$BIN" selftest --model "$MODEL" --device cuda >/dev/null 2>"$TMP/err"
  [ $? = 1 ] && grep -q 'selftest: --device cuda: ' "$TMP/err" || fail "selftest --device cuda: $(cat "$TMP/err")"
fi

# selftest on the CPU: passes, says what it is.
"$BIN" selftest --model "$MODEL" --device cpu --max-length 64 --batch-tokens 2048 --batches 2 >"$TMP/out" 2>"$TMP/err" ||
  fail "selftest --device cpu: $(cat "$TMP/out" "$TMP/err")"
grep -q '^note: --device cpu checks the CPU encoder against itself' "$TMP/out" &&
  grep -q '^agreement: OK' "$TMP/out" && grep -q '^speed: 2 batches' "$TMP/out" ||
  fail "selftest output: $(cat "$TMP/out")"
SPLADEX_TEST_CANARY_FAULT=drop:3 "$BIN" selftest --model "$MODEL" --device cpu --max-length 64 >"$TMP/out" 2>"$TMP/err"
[ $? = 1 ] && grep -q "^FAILED: .*passage 'wn-" "$TMP/out" || fail "selftest with a fault: $(cat "$TMP/out" "$TMP/err")"
echo "test_canary.sh: ok"
