#!/usr/bin/env bash
# test_workers: 3 `--worker I/3` processes sharing one output directory produce exactly the shards
# of 1 process (same files, doc_ids, vectors); each worker writes only its shards s % 3 == I; a
# worker that owns no shard of a tiny job succeeds with nothing to do; a rerun with different
# parameters is refused naming the parameter, and --overwrite starts over. N is the job's (job.json):
# another N is refused naming both and deletes nothing; --worker auto takes I from Slurm /
# SPLADEX_WORKER / JOB_COMPLETION_INDEX and N from job.json (a resubmitted index runs as the same
# I/N), refuses an array with a step or gap on first use; the worker locks conflict whatever N the
# other process has; a file system without flock gets an error that says what to do (--no-lock).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

python3 tests/sh/shards.py corpus "$TMP/c.tsv" 330 11
loud=("$BIN" expand --model "$MODEL" --input "$TMP/c.tsv" --shard-size 30 --threads 1
      "${MODEL_FLAGS[@]}")
run=("${loud[@]}" --quiet)

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
python3 - "$TMP/one/job.json" "$TMP/three/job.json" <<'PY' || fail "job.json differs between 1 process and 3 workers (but for workers)"
import json, sys
one, three = (json.load(open(p)) for p in sys.argv[1:])
assert (one.pop("workers"), three.pop("workers")) == (1, 3) and one == three
PY
echo "ok: 3 workers == 1 process"

# --overwrite with N > 1 is refused: it would delete the other workers' shards
"${run[@]}" --output "$TMP/three" --worker 1/3 --overwrite 2>"$TMP/err" && fail "--overwrite with --worker 1/3 was accepted"
grep -q "other workers' shards" "$TMP/err" || { cat "$TMP/err" >&2; fail "the --overwrite refusal does not say why"; }
python3 tests/sh/shards.py compare "$TMP/one" "$TMP/three" "$TMP/c.tsv" || fail "a refused --overwrite changed the shards"
echo "ok: --overwrite refused with --worker I/N"

# a second process in the same worker slot is refused while the first holds it (flock(1) stands
# in for the first process: it holds the same lock as a running expand would)
flock -n "$TMP/three/.spladex-worker-2.lock" \
  "${run[@]}" --output "$TMP/three" --worker 2/3 2>"$TMP/err" && fail "two processes ran as worker 2/3 at once"
grep -q "already running as worker 2/3" "$TMP/err" || { cat "$TMP/err" >&2; fail "the second worker 2/3 was not refused clearly"; }
"${run[@]}" --output "$TMP/three" --worker 2/3 || fail "worker 2/3 failed once the slot was free"
echo "ok: one process per worker slot"

# N is fixed by job.json: another N is refused, naming both, and deletes nothing. A fake .tmp of
# worker 2 stands for a shard it is writing right now: a --worker 0/1 (what `sbatch --array=1`
# gave the old script) owned every shard and removed every .tmp.
grep -q '"workers":[[:space:]]*3' "$TMP/three/job.json" || fail "job.json does not record workers 3"
mv "$TMP/three/shard-00005.h5" "$TMP/three/shard-00005.h5.tmp"
for w in 0/1 1/2 4/5; do
  "${run[@]}" --output "$TMP/three" --worker $w 2>"$TMP/err" && fail "--worker $w ran on a job of 3 workers"
  grep -q "N = 3 workers, but this run asks for N = ${w#*/} (--worker $w)" "$TMP/err" || { cat "$TMP/err" >&2; fail "--worker $w: the refusal does not name both Ns"; }
done
[ -f "$TMP/three/shard-00005.h5.tmp" ] || fail "a refused worker removed another worker's .tmp"
# --worker auto, a resubmitted Slurm index (sbatch --array=1: 1 task, min = max = 1): worker 1/3,
# which leaves worker 2's .tmp alone
slurm1=(env SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=1 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_MAX=1)
"${slurm1[@]}" "${loud[@]}" --output "$TMP/three" --worker auto 2>"$TMP/err" || { cat "$TMP/err" >&2; fail "--worker auto as array index 1 failed"; }
grep -q "worker 1/3" "$TMP/err" || { cat "$TMP/err" >&2; fail "--worker auto as array index 1 did not run as worker 1/3"; }
[ -f "$TMP/three/shard-00005.h5.tmp" ] || fail "worker 1/3 removed worker 2's .tmp"
SPLADEX_WORKER=2 "${run[@]}" --output "$TMP/three" --worker auto || fail "SPLADEX_WORKER=2 --worker auto failed"
[ ! -e "$TMP/three/shard-00005.h5.tmp" ] || fail "worker 2 did not clear its own .tmp"
python3 tests/sh/shards.py compare "$TMP/one" "$TMP/three" "$TMP/c.tsv" || fail "shards differ after the resubmitted workers"
"$BIN" verify "$TMP/three" >"$TMP/out" || { cat "$TMP/out" >&2; fail "verify failed"; }
grep -q "OK: 11 shards, 330 docs, 3 workers" "$TMP/out" || { cat "$TMP/out" >&2; fail "verify does not report 3 workers"; }
"$BIN" info "$TMP/three" --top 0 >"$TMP/out" && grep -q "^workers *3" "$TMP/out" || fail "info does not report 3 workers"
rm "$TMP/three/shard-00004.h5"
"$BIN" verify "$TMP/three" >"$TMP/out" && fail "verify passed with a shard missing"
grep -q "shard-00004.h5: missing (worker 1/3's)" "$TMP/out" || { cat "$TMP/out" >&2; fail "verify does not name the missing shard's worker"; }
SPLADEX_WORKER=1 JOB_COMPLETION_INDEX=0 "${run[@]}" --output "$TMP/three" --worker auto || fail "SPLADEX_WORKER=1 failed"
[ -f "$TMP/three/shard-00004.h5" ] || fail "worker 1 (SPLADEX_WORKER wins over JOB_COMPLETION_INDEX) did not redo shard 4"
echo "ok: N fixed by job.json, --worker auto resumes an index as I/N"

# --worker auto on a new directory: N from a Slurm array 0-(N-1), --workers N, or refused
env SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_COUNT=3 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_MAX=4 \
  "${run[@]}" --output "$TMP/step" --worker auto 2>"$TMP/err" && fail "--array=0-4:2 was accepted"
grep -q "not 0-2.*--workers N" "$TMP/err" || { cat "$TMP/err" >&2; fail "the stepped array's refusal is unclear"; }
"${slurm1[@]}" "${run[@]}" --output "$TMP/step" --worker auto 2>"$TMP/err" && fail "--array=1 on a new directory was accepted"
! ls "$TMP/step" 2>/dev/null | grep -q 'job.json\|^shard-' || fail "a refused worker wrote into a new directory"
JOB_COMPLETION_INDEX=1 "${run[@]}" --output "$TMP/k8s" --worker auto 2>"$TMP/err" && fail "JOB_COMPLETION_INDEX without N was accepted"
grep -q "pass --workers N" "$TMP/err" || { cat "$TMP/err" >&2; fail "the refusal without N does not say --workers"; }
JOB_COMPLETION_INDEX=1 "${run[@]}" --output "$TMP/k8s" --worker auto --workers 3 || fail "JOB_COMPLETION_INDEX=1 --workers 3 failed"
got=$(ls "$TMP/k8s" | grep '^shard-' | tr '\n' ' ')
[ "$got" = "shard-00001.h5 shard-00004.h5 shard-00007.h5 shard-00010.h5 " ] || fail "JOB_COMPLETION_INDEX=1 --workers 3 wrote: $got"
env SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_TASK_COUNT=3 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_MAX=2 \
  "${run[@]}" --output "$TMP/k8s" --worker auto || fail "Slurm array 0-2 index 0 failed"
JOB_COMPLETION_INDEX=3 "${run[@]}" --output "$TMP/k8s" --worker auto 2>"$TMP/err" && fail "worker 3 of 3 was accepted"
grep -q "outside the job's workers 0..2" "$TMP/err" || { cat "$TMP/err" >&2; fail "worker 3 of 3: unclear refusal"; }
echo "ok: --worker auto on a new directory"

# a job.json written before "workers" existed: the next run records its N
python3 - "$TMP/k8s/job.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); del j["workers"]; json.dump(j, open(sys.argv[1], "w"))
PY
"${run[@]}" --output "$TMP/k8s" --worker 2/3 || fail "worker 2/3 on a job.json without workers failed"
grep -q '"workers":[[:space:]]*3' "$TMP/k8s/job.json" || fail "job.json without workers did not get N"
"$BIN" verify "$TMP/k8s" >/dev/null || fail "verify after the old-job.json run failed"
echo "ok: job.json without workers"

# the worker lock has no N in its name: it conflicts with a process of any N; --overwrite refuses
# while any worker runs
flock -n "$TMP/one/.spladex-worker-0.lock" \
  "${run[@]}" --output "$TMP/one" --shard-size 100 --overwrite 2>"$TMP/err" && fail "--overwrite ran beside a worker"
grep -q "a worker is still running" "$TMP/err" || { cat "$TMP/err" >&2; fail "--overwrite beside a worker: unclear refusal"; }
echo "ok: --overwrite refused while a worker runs"

# a file system without flock (Lustre without -o flock): a message that says what to do, and
# --no-lock as the user's explicit choice
for e in ENOLCK ENOSYS EOPNOTSUPP; do
  SPLADEX_TEST_FLOCK_ERRNO=$e "${run[@]}" --output "$TMP/nolock" 2>"$TMP/err" && fail "$e: ran without a lock"
  grep -q "does not support flock.*-o flock.*--no-lock" "$TMP/err" || { cat "$TMP/err" >&2; fail "$e: the message does not say what to do"; }
done
SPLADEX_TEST_FLOCK_ERRNO=ENOLCK "${run[@]}" --output "$TMP/nolock" --no-lock || fail "--no-lock failed"
python3 tests/sh/shards.py compare "$TMP/one" "$TMP/nolock" "$TMP/c.tsv" || fail "--no-lock shards differ"
echo "ok: no flock: a clear error, --no-lock"

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
