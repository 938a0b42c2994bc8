#!/usr/bin/env bash
# test_expand_kill: `spladex expand` killed with SIGKILL at many moments, then rerun with the
# identical command, ends with exactly the shards of an uninterrupted run: the same doc_ids in the
# same order (the corpus's, no duplicate, no gap) and the same vectors.
#
# Deterministic kills use the test-only hook SPLADEX_TEST_KILL_POINT=NAME:COUNT (host/pipeline.h):
# the process SIGKILLs itself the COUNT-th time it reaches NAME:
#   read      a doc was read (the pipeline is full of docs in flight)
#   batch     a batch was encoded, its rows not yet written        (mid-batch)
#   append    a row was appended to the open .tmp shard            (mid-shard-write)
#   finish    a shard's rows are written, before fsync + rename     (at the rename)
#   finished  just after a rename                                   (between shards)
# Timed kills (kill -9 after a delay, at whatever the job is doing) come on top, and a SIGTERM
# run checks the clean stop: non-zero exit, a clear message, no .tmp left behind.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

python3 tests/sh/shards.py corpus "$TMP/c.tsv" 400 7
loud=("$BIN" expand --model "$MODEL" --input "$TMP/c.tsv" --shard-size 40 --batch-tokens 1024
      --threads 2 "${MODEL_FLAGS[@]}")
run=("${loud[@]}" --quiet)

"${run[@]}" --output "$TMP/ref" || fail "the uninterrupted run failed"
[ "$(ls "$TMP/ref" | grep -c '^shard-.*\.h5$')" = 10 ] || fail "expected 10 shards"

# one directory per scenario; each scenario is a list of kill points applied to successive runs
scenarios=(
  "read:130"
  "batch:2"
  "append:75"
  "finish:1"
  "finished:3"
  "append:330"
  "finish:9"
  "append:30 batch:3 finished:2 append:200"    # killed again and again while resuming
)
i=0
for sc in "${scenarios[@]}"; do
  i=$((i + 1))
  out=$TMP/k$i
  for point in $sc; do
    SPLADEX_TEST_KILL_POINT=$point "${run[@]}" --output "$out" 2>"$TMP/err"
    rc=$?
    [ $rc = 137 ] || { cat "$TMP/err" >&2; fail "[$sc] $point: expected death by SIGKILL (137), got $rc"; }
    python3 tests/sh/shards.py check-clean "$out" || fail "[$sc] $point: a final-named shard is incomplete"
  done
  "${run[@]}" --output "$out" || fail "[$sc] the resumed run failed"
  python3 tests/sh/shards.py compare "$TMP/ref" "$out" "$TMP/c.tsv" || fail "[$sc] resumed shards differ"
  echo "ok: killed at $sc, resumed"
done

# a resumed run leaves complete shards untouched (same inode and mtime)
out=$TMP/k3
stat -c '%i %Y' "$out"/shard-00000.h5 >"$TMP/before"
"${run[@]}" --output "$out" || fail "rerun of a finished job failed"
stat -c '%i %Y' "$out"/shard-00000.h5 | cmp -s - "$TMP/before" || fail "a complete shard was rewritten"

# timed kills at arbitrary moments
out=$TMP/timed
for delay in 0.4 0.9 1.4; do
  "${run[@]}" --output "$out" 2>/dev/null &
  pid=$!
  sleep "$delay"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  python3 tests/sh/shards.py check-clean "$out" || fail "timed kill after ${delay}s: a final-named shard is incomplete"
done
"${run[@]}" --output "$out" || fail "resume after timed kills failed"
python3 tests/sh/shards.py compare "$TMP/ref" "$out" "$TMP/c.tsv" || fail "timed kills: shards differ"
echo "ok: 3 timed kills, resumed"

# SIGTERM: a clean stop
out=$TMP/term
"${loud[@]}" --output "$out" 2>"$TMP/err" &
pid=$!
for _ in $(seq 100); do ls "$out"/shard-00001.h5 >/dev/null 2>&1 && break; sleep 0.05; done
kill -TERM $pid
wait $pid
rc=$?
[ $rc != 0 ] || fail "SIGTERM: the job exited 0"
grep -q "interrupted" "$TMP/err" || { cat "$TMP/err" >&2; fail "SIGTERM: no 'interrupted' message"; }
! ls "$out" | grep -q '\.tmp$' || fail "SIGTERM: a .tmp was left behind"
"${run[@]}" --output "$out" || fail "resume after SIGTERM failed"
python3 tests/sh/shards.py compare "$TMP/ref" "$out" "$TMP/c.tsv" || fail "SIGTERM: shards differ"
echo "ok: SIGTERM stops cleanly, resumed"
# Long documents (--stride): a document's windows span many batches (4 windows of 32 tokens per
# batch, ~20 windows per long doc); kills while a long document's windows are half encoded (its
# running max carried by the encoder, nothing of it written) and a resume equal the uninterrupted
# run; a rerun with another --stride or --max-windows is refused, naming the parameter.
python3 - "$TMP/long.tsv" <<'PY'
import random, sys
rng = random.Random(11)
words = "sparse lexical expansion of long documents by sliding windows max pooled into one vector".split()
with open(sys.argv[1], "w") as f:
    for i in range(48):
        k = rng.choice([0, 5, 40, 250, 400])
        f.write("long%d\t%s\n" % (i, " ".join(rng.choice(words) for _ in range(k))))
PY
long=("$BIN" expand --model "$MODEL" --input "$TMP/long.tsv" --shard-size 16 --max-length 32
      --stride 15 --max-windows 24 --batch-tokens 128 --threads 2 --quiet "${MODEL_FLAGS[@]}")
"${long[@]}" --output "$TMP/lref" || fail "long documents: the uninterrupted run failed"
grep -q '"stride":' "$TMP/lref/job.json" && grep -q '"max_windows":' "$TMP/lref/job.json" \
  || fail "long documents: job.json lacks stride / max_windows"
for sc in "batch:7" "batch:3 batch:20" "append:20"; do
  out=$TMP/l${sc//[: ]/_}
  for point in $sc; do
    SPLADEX_TEST_KILL_POINT=$point "${long[@]}" --output "$out" 2>"$TMP/err"
    rc=$?
    [ $rc = 137 ] || { cat "$TMP/err" >&2; fail "long [$sc] $point: expected SIGKILL (137), got $rc"; }
    python3 tests/sh/shards.py check-clean "$out" || fail "long [$sc] $point: an incomplete final shard"
  done
  "${long[@]}" --output "$out" || fail "long [$sc]: the resumed run failed"
  python3 tests/sh/shards.py compare "$TMP/lref" "$out" "$TMP/long.tsv" || fail "long [$sc]: shards differ"
  echo "ok: long documents killed at $sc mid-document, resumed"
done
for opt in "--stride 14:stride" "--max-windows 23:max_windows"; do
  out=$TMP/lref
  "${long[@]}" --output "$out" ${opt%%:*} 2>"$TMP/err" && fail "a rerun with ${opt%%:*} was accepted"
  grep -q "${opt##*:}" "$TMP/err" || { cat "$TMP/err" >&2; fail "the refusal of ${opt%%:*} does not name ${opt##*:}"; }
done
echo "ok: long documents: a rerun with another stride / max-windows is refused"
echo "test_expand_kill: all passed"
