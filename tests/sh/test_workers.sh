#!/usr/bin/env bash
# test_workers: 3 `--worker I/3` processes sharing one output directory produce exactly the shards
# of 1 process (same files, doc_ids, vectors); each worker writes only its shards s % 3 == I; a
# worker that owns no shard of a tiny job succeeds with nothing to do; a rerun with different
# parameters is refused naming the parameter, and --overwrite starts over.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

python3 tests/sh/shards.py corpus "$TMP/c.tsv" 330 11
run=("$BIN" expand --model "$MODEL" --input "$TMP/c.tsv" --shard-size 30 --threads 1 --quiet
     "${MODEL_FLAGS[@]}")

"${run[@]}" --output "$TMP/one" || fail "the single-process run failed"

# worker 1 alone: only shards 1, 4, 7, 10
"${run[@]}" --output "$TMP/three" --worker 1/3 || fail "worker 1/3 failed"
got=$(ls "$TMP/three" | grep '^shard-' | tr '\n' ' ')
[ "$got" = "shard-00001.h5 shard-00004.h5 shard-00007.h5 shard-00010.h5 " ] || fail "worker 1/3 wrote: $got"

# then all three at once (worker 1 again: its shards are complete and skipped)
pids=()
for i in 0 1 2; do
  "${run[@]}" --output "$TMP/three" --worker $i/3 2>"$TMP/err$i" &
  pids+=($!)
done
for i in 0 1 2; do
  wait "${pids[$i]}" || { cat "$TMP/err$i" >&2; fail "worker $i/3 failed"; }
done
python3 tests/sh/shards.py compare "$TMP/one" "$TMP/three" "$TMP/c.tsv" || fail "3 workers differ from 1 process"
cmp -s "$TMP/one/job.json" "$TMP/three/job.json" || fail "job.json differs between 1 process and 3 workers"
echo "ok: 3 workers == 1 process"

# --overwrite with N > 1 is refused: it would delete the other workers' shards
"${run[@]}" --output "$TMP/three" --worker 1/3 --overwrite 2>"$TMP/err" && fail "--overwrite with --worker 1/3 was accepted"
grep -q "other workers' shards" "$TMP/err" || { cat "$TMP/err" >&2; fail "the --overwrite refusal does not say why"; }
python3 tests/sh/shards.py compare "$TMP/one" "$TMP/three" "$TMP/c.tsv" || fail "a refused --overwrite changed the shards"
echo "ok: --overwrite refused with --worker I/N"

# a second process in the same worker slot is refused while the first holds it (flock(1) stands
# in for the first process: it holds the same lock as a running expand would)
flock -n "$TMP/three/.spladex-worker-2-of-3.lock" \
  "${run[@]}" --output "$TMP/three" --worker 2/3 2>"$TMP/err" && fail "two processes ran as worker 2/3 at once"
grep -q "already running as worker 2/3" "$TMP/err" || { cat "$TMP/err" >&2; fail "the second worker 2/3 was not refused clearly"; }
"${run[@]}" --output "$TMP/three" --worker 2/3 || fail "worker 2/3 failed once the slot was free"
echo "ok: one process per worker slot"

# more workers than shards: worker 5/7 of a 2-shard job has nothing to do and exits 0
head -50 "$TMP/c.tsv" >"$TMP/small.tsv"
"$BIN" expand --model "$MODEL" --input "$TMP/small.tsv" --output "$TMP/small" --shard-size 30 \
  --quiet --worker 5/7 "${MODEL_FLAGS[@]}" || fail "an idle worker failed"
! ls "$TMP/small" | grep -q '^shard-' || fail "an idle worker wrote a shard"
echo "ok: idle worker"

# other parameters are refused, naming the parameter; --overwrite starts over
"${run[@]}" --output "$TMP/one" --max-length 128 2>"$TMP/err" && fail "a rerun with another --max-length was accepted"
grep -q "max_length" "$TMP/err" || { cat "$TMP/err" >&2; fail "the refusal does not name max_length"; }
"${run[@]}" --output "$TMP/one" --shard-size 31 2>"$TMP/err" && fail "a rerun with another --shard-size was accepted"
grep -q "shard_size" "$TMP/err" || { cat "$TMP/err" >&2; fail "the refusal does not name shard_size"; }
"${run[@]}" --output "$TMP/one" --shard-size 100 --overwrite || fail "--overwrite failed"
got=$(ls "$TMP/one" | grep -c '^shard-')
[ "$got" = 4 ] || fail "--overwrite left $got shards, expected 4"
echo "ok: parameter check and --overwrite"
echo "test_workers: all passed"
