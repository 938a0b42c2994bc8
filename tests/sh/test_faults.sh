#!/usr/bin/env bash
# test_faults: faults while `spladex expand` runs. Each one must give one clear error (non-zero
# exit, a message naming the file or cause), leave every final-named shard complete and no
# shard-*.tmp behind once the process has exited, and after the cause is fixed the identical
# command must finish the job with the same shards as an uninterrupted run.
#   disk full            a 1 MB tmpfs as the output directory (root), remounted larger to fix;
#                        without root: `ulimit -f` with SIGXFSZ ignored (write fails with EFBIG)
#   unwritable output    a read-only remount of that tmpfs (root; chmod 555 does not stop root),
#                        or chmod 555 when not root
#   output under a file  --output FILE/out
#   input changed        truncated between an interrupted run and its rerun: the rerun refuses
#   input truncated      truncated while the job reads it: the job must not finish as if the
#   mid-run              shorter file were the whole input
#   input removed        unlinked while the job runs (the open file is read to its end: the job
#                        completes); the rerun names the missing file
#   truncated model      model.safetensors cut in half: refused before any shard is written
#   SIGTERM, SIGINT      clean stop: "interrupted", no .tmp; the rerun completes the job
#   export, queries      of the reference / two topics: fsync(PATH.tmp), rename,
#                        fsync(directory) under strace (PATH.meta.json fsynced too); export
#                        under a file size limit: an error, and neither PATH nor PATH.tmp
# Compares shards with tests/sh/shards.py (h5py + numpy).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

failures=0
bad() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

python3 tests/sh/shards.py corpus "$TMP/c.tsv" 300 11
base=("$BIN" expand --model "$MODEL" --input "$TMP/c.tsv" --shard-size 30 --max-length 32
      --batch-tokens 1024 --threads 2 "${MODEL_FLAGS[@]}")
run=("${base[@]}" --quiet)
"${run[@]}" --output "$TMP/ref" || fail "the uninterrupted reference run failed"
nref=$(ls "$TMP/ref" | grep -c '^shard-.*\.h5$')
[ "$nref" = 10 ] || fail "expected 10 reference shards, got $nref"

# died RC: the process was killed by a signal (a crash is never a clear error)
died() { [ "$1" -ge 128 ]; }
# no_tmp DIR: no shard-*.tmp left behind
no_tmp() { ! ls "$1" 2>/dev/null | grep -q '\.tmp$'; }
# one_error FILE: the run printed exactly one "spladex: ..." error line (progress lines aside)
one_error() { [ "$(grep -c '^spladex: .*error\|^spladex: ' "$1")" -ge 1 ]; }
# finish NAME DIR: the identical command completes DIR and it equals the reference
finish() {
  if ! "${run[@]}" --output "$2" 2>"$TMP/err.$1.rerun"; then
    cat "$TMP/err.$1.rerun" >&2
    bad "$1: the rerun after fixing the cause failed"
    return
  fi
  python3 tests/sh/shards.py compare "$TMP/ref" "$2" "$TMP/c.tsv" || { bad "$1: shards differ from the reference"; return; }
  ok "$1: the rerun completed the job, shards equal the reference"
}
# wait_shard DIR N PID: waits until DIR has N complete shards (fails when PID exited first or
# after 2 minutes, for sanitizer builds on a loaded machine)
wait_shard() {
  for _ in $(seq 6000); do
    [ "$(ls "$1" 2>/dev/null | grep -c '^shard-.*\.h5$')" -ge "$2" ] && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.02
  done
  return 1
}

mounted=()
cleanup_mounts() { for m in "${mounted[@]}"; do umount "$m" 2>/dev/null; done; rm -rf "$TMP"; }
trap cleanup_mounts EXIT
can_mount=0
# SPLADEX_FAULTS_NO_MOUNT=1 forces the non-root variants (ulimit -f) for checking them as root.
if [ "$(id -u)" = 0 ] && [ -z "${SPLADEX_FAULTS_NO_MOUNT:-}" ] && mkdir -p "$TMP/probe" &&
   mount -t tmpfs -o size=1m tmpfs "$TMP/probe" 2>/dev/null; then
  umount "$TMP/probe"
  can_mount=1
fi

# ---- disk full while writing a shard ----
if [ $can_mount = 1 ]; then
  d=$TMP/full
  mkdir -p "$d"
  mount -t tmpfs -o size=1m tmpfs "$d" && mounted+=("$d")
  "${run[@]}" --output "$d/out" 2>"$TMP/err.full"
  rc=$?
  if [ $rc = 0 ]; then
    bad "disk full: the job exited 0 on a 1 MB file system"
  elif died $rc; then
    cat "$TMP/err.full" >&2
    bad "disk full: the job died with signal $((rc - 128)) instead of exiting with an error"
  else
    grep -qi "no space left" "$TMP/err.full" || { cat "$TMP/err.full" >&2; bad "disk full: the message does not say 'No space left on device'"; }
    # one error line (a CPU-only build adds the --device auto warning before it)
    [ "$(grep -vc 'WARNING: --device auto' "$TMP/err.full")" = 1 ] || { cat "$TMP/err.full" >&2; bad "disk full: the error is not one line"; }
    no_tmp "$d/out" || bad "disk full: a .tmp shard was left behind"
    python3 tests/sh/shards.py check-clean "$d/out" || bad "disk full: a final-named shard is incomplete"
    ok "disk full: exit $rc, $(head -c 200 "$TMP/err.full" | head -1)"
  fi
  mount -o remount,size=64m "$d"
  finish "disk full" "$d/out"
else
  # Not root: a file size limit stands in for a full disk; SIGXFSZ ignored, so write() fails
  # with EFBIG the way it fails with ENOSPC.
  d=$TMP/fsize
  ( trap '' XFSZ; ulimit -f 600; exec "${run[@]}" --output "$d" ) 2>"$TMP/err.full"
  rc=$?
  [ $rc != 0 ] || bad "file size limit: the job exited 0"
  ! died $rc || bad "file size limit: the job died with signal $((rc - 128))"
  no_tmp "$d" || bad "file size limit: a .tmp shard was left behind"
  python3 tests/sh/shards.py check-clean "$d" || bad "file size limit: a final-named shard is incomplete"
  ok "file size limit (ulimit -f): exit $rc, $(head -1 "$TMP/err.full")"
  finish "file size limit" "$d"
fi

# ---- unwritable output directory ----
d=$TMP/ro
unwritable=1
if [ $can_mount = 1 ]; then
  mkdir -p "$d"
  mount -t tmpfs -o size=64m tmpfs "$d" && mounted+=("$d")
  mkdir "$d/out"
  mount -o remount,ro "$d"
  fix() { mount -o remount,rw "$d"; }
elif [ "$(id -u)" != 0 ]; then
  mkdir -p "$d/out"
  chmod 555 "$d/out"
  fix() { chmod 755 "$d/out"; }
else
  unwritable=0
  echo "note: unwritable output not exercised (root without mount: permissions do not stop root)"
fi
if [ $unwritable = 1 ]; then
  "${run[@]}" --output "$d/out" 2>"$TMP/err.ro"
  rc=$?
  if [ $rc = 0 ] || died $rc; then
    bad "unwritable output: the job exited with $rc"
  else
    grep -q "$d/out" "$TMP/err.ro" || { cat "$TMP/err.ro" >&2; bad "unwritable output: the message does not name the directory"; }
    ok "unwritable output: exit $rc, $(head -1 "$TMP/err.ro")"
  fi
  fix
  finish "unwritable output" "$d/out"
fi

# ---- output path under a regular file ----
touch "$TMP/afile"
"${run[@]}" --output "$TMP/afile/out" 2>"$TMP/err.file"
rc=$?
[ $rc != 0 ] || bad "output under a file: the job exited 0"
grep -q "afile" "$TMP/err.file" || { cat "$TMP/err.file" >&2; bad "output under a file: the message does not name the path"; }
[ $rc = 0 ] || ok "output under a file: exit $rc, $(head -1 "$TMP/err.file")"

# ---- input changed between an interrupted run and its rerun ----
d=$TMP/changed
cp "$TMP/c.tsv" "$TMP/c.tsv.orig"
{ SPLADEX_TEST_KILL_POINT=finished:3 "${run[@]}" --output "$d"; } 2>/dev/null  # dies by SIGKILL after 3 shards
head -c $(( $(stat -c %s "$TMP/c.tsv") / 2 )) "$TMP/c.tsv.orig" >"$TMP/c.tsv"
"${run[@]}" --output "$d" 2>"$TMP/err.changed"
rc=$?
if [ $rc = 0 ]; then
  bad "input changed: the rerun on a truncated input exited 0"
else
  grep -q "input" "$TMP/err.changed" || { cat "$TMP/err.changed" >&2; bad "input changed: the message does not name the input"; }
  ok "input changed between runs: exit $rc, $(head -1 "$TMP/err.changed")"
fi
python3 tests/sh/shards.py check-clean "$d" || bad "input changed: a final-named shard is incomplete"
cp "$TMP/c.tsv.orig" "$TMP/c.tsv"
finish "input changed" "$d"

# ---- input truncated while the job reads it ----
# A corpus far longer than the reader's read-ahead, encoded at --max-length 8 (cheap), cut in the
# middle of a line once the first shard is written. The job must not end successfully as if the
# shorter file were the whole input (a silently shorter job, and a half line encoded as a doc).
python3 tests/sh/shards.py corpus "$TMP/long.tsv" 20000 5
size=$(stat -c %s "$TMP/long.tsv")
d=$TMP/trunc
"$BIN" expand --model "$MODEL" --input "$TMP/long.tsv" --output "$d" --shard-size 500 --max-length 8 \
  --batch-tokens 4096 --threads 2 --quiet "${MODEL_FLAGS[@]}" 2>"$TMP/err.trunc" &
pid=$!
if wait_shard "$d" 1 $pid; then
  truncate -s $(( size / 2 + 17 )) "$TMP/long.tsv"
  wait $pid
  rc=$?
  n=$(python3 tests/sh/shards.py ids "$d" | wc -l)
  if [ $rc = 0 ] && [ "$n" != 20000 ]; then
    bad "input truncated mid-run: the job exited 0 with $n of the 20000 docs (the shorter file was taken as the whole input)"
  elif [ $rc = 0 ]; then
    echo "note: input truncated mid-run not exercised (the reader had read the whole file already)"
  elif died $rc; then
    bad "input truncated mid-run: the job died with signal $((rc - 128))"
  else
    grep -q "long.tsv" "$TMP/err.trunc" || { cat "$TMP/err.trunc" >&2; bad "input truncated mid-run: the message does not name the input"; }
    ok "input truncated mid-run: exit $rc, $(head -1 "$TMP/err.trunc")"
  fi
  no_tmp "$d" || bad "input truncated mid-run: a .tmp shard was left behind"
  python3 tests/sh/shards.py check-clean "$d" || bad "input truncated mid-run: a final-named shard is incomplete"
else
  kill -TERM $pid 2>/dev/null
  wait $pid
  echo "note: input truncated mid-run not exercised (no shard was written in time)"
fi
rm -f "$TMP/long.tsv"

# ---- input removed while the job runs ----
d=$TMP/removed
cp "$TMP/c.tsv" "$TMP/c.tsv.orig"
"${run[@]}" --output "$d" 2>"$TMP/err.removed" &
pid=$!
wait_shard "$d" 1 $pid
rm -f "$TMP/c.tsv"
wait $pid
rc=$?
# The open file stays readable until closed: the job may complete; if it stops, it says why.
if [ $rc = 0 ]; then
  python3 tests/sh/shards.py compare "$TMP/ref" "$d" "$TMP/c.tsv.orig" || bad "input removed: the completed job differs from the reference"
  ok "input removed mid-run: the open file was read to its end, shards equal the reference"
else
  grep -q "c.tsv" "$TMP/err.removed" || bad "input removed: the message does not name the input"
  ok "input removed mid-run: exit $rc, $(head -1 "$TMP/err.removed")"
fi
"${run[@]}" --output "$d" 2>"$TMP/err.removed2"
rc=$?
[ $rc != 0 ] && grep -q "c.tsv" "$TMP/err.removed2" || bad "input removed: the rerun without the input did not name it (exit $rc)"
[ $rc = 0 ] || ok "input removed, rerun: exit $rc, $(head -1 "$TMP/err.removed2")"
cp "$TMP/c.tsv.orig" "$TMP/c.tsv"
finish "input removed" "$d"

# ---- truncated model file ----
d=$TMP/badmodel
mkdir -p "$TMP/model-cut"
cp -r "$MODEL"/. "$TMP/model-cut/"
w=$TMP/model-cut/model.safetensors
[ -f "$w" ] || w=$TMP/model-cut/pytorch_model.bin
truncate -s $(( $(stat -c %s "$w") / 2 )) "$w"
"$BIN" expand --model "$TMP/model-cut" --input "$TMP/c.tsv" --output "$d" --shard-size 30 --max-length 32 \
  --batch-tokens 1024 --threads 2 --quiet "${MODEL_FLAGS[@]}" 2>"$TMP/err.model"
rc=$?
if [ $rc = 0 ] || died $rc; then
  bad "truncated model: the job exited with $rc"
else
  grep -q "$(basename "$w")" "$TMP/err.model" || { cat "$TMP/err.model" >&2; bad "truncated model: the message does not name the weights file"; }
  ! ls "$d" 2>/dev/null | grep -q '^shard-' || bad "truncated model: shards were written"
  ok "truncated model: exit $rc, $(head -1 "$TMP/err.model")"
fi

# ---- SIGTERM and SIGINT: a clean stop, then the rerun completes ----
for sig in TERM INT; do
  d=$TMP/sig$sig
  "${base[@]}" --output "$d" 2>"$TMP/err.$sig" &
  pid=$!
  if ! wait_shard "$d" 2 $pid; then
    kill -TERM $pid 2>/dev/null
    wait $pid
    echo "note: SIG$sig not exercised (the job finished first)"
    continue
  fi
  kill -$sig $pid
  wait $pid
  rc=$?
  if [ $rc = 0 ]; then
    bad "SIG$sig: the job exited 0"
  elif died $rc; then
    bad "SIG$sig: the job died with signal $((rc - 128)) instead of stopping cleanly"
  else
    grep -qi "interrupted" "$TMP/err.$sig" || { cat "$TMP/err.$sig" >&2; bad "SIG$sig: no 'interrupted' message"; }
    no_tmp "$d" || bad "SIG$sig: a .tmp shard was left behind"
    python3 tests/sh/shards.py check-clean "$d" || bad "SIG$sig: a final-named shard is incomplete"
    ok "SIG$sig: exit $rc, $(grep -i interrupted "$TMP/err.$sig" | head -1)"
  fi
  finish "SIG$sig" "$d"
done

# ---- export and queries: the output is complete or absent, and durable once published ----
# `spladex export` and `spladex queries` write PATH.tmp and publish it with io/atomic_file.h:
# fsync of the file, rename, fsync of the directory, then PATH.meta.json the same way (strace -y
# shows each fsync's file, so the order is checked). A failed export (file size limit, SIGXFSZ
# ignored: write fails with EFBIG) leaves neither PATH nor PATH.tmp.
e=$TMP/export
mkdir -p "$e"
# published NAME OUT CMD...: runs CMD under strace and checks fsync(OUT.tmp) < rename < fsync(dir)
published() {
  local name=$1 out=$2 log=$TMP/strace.$1
  shift 2
  if ! command -v strace >/dev/null; then
    echo "note: $name durability not checked (no strace)"
    return
  fi
  strace -f -y -qq -o "$log" -e trace=fsync,fdatasync,rename,renameat,renameat2 "$@" 2>"$TMP/err.$name"
  local rc=$?
  local at_file at_rename at_dir at_meta
  at_file=$(grep -n 'fsync(' "$log" | grep -F "<$out.tmp>" | head -1 | cut -d: -f1)
  at_rename=$(grep -n 'rename' "$log" | grep -F "\"$out.tmp\", " | grep -F "\"$out\")" | head -1 | cut -d: -f1)
  at_dir=$(grep -n 'fsync(' "$log" | grep -F "<$(dirname "$out")>" | tail -1 | cut -d: -f1)
  at_meta=$(grep -n 'fsync(' "$log" | grep -F "<$out.meta.json.tmp>" | head -1 | cut -d: -f1)
  if [ $rc != 0 ]; then
    cat "$TMP/err.$name" >&2
    bad "$name: exit $rc"
  elif [ -z "$at_file" ] || [ -z "$at_rename" ] || [ -z "$at_dir" ] ||
       [ "$at_file" -gt "$at_rename" ] || [ "$at_dir" -lt "$at_rename" ]; then
    cat "$log" >&2
    bad "$name: not fsync(PATH.tmp), rename, fsync(directory) (lines ${at_file:-none}, ${at_rename:-none}, ${at_dir:-none})"
  elif [ -z "$at_meta" ] || [ ! -s "$out.meta.json" ]; then
    bad "$name: PATH.meta.json was not fsynced before its rename"
  else
    ok "$name: fsync of $(basename "$out").tmp, rename, fsync of its directory (and of PATH.meta.json)"
  fi
}
for fmt in jsonl ciff; do
  out=$e/out.$fmt
  published "export $fmt" "$out" "$BIN" export $fmt --input "$TMP/ref" --output "$out" --device cpu
  rm -f "$out"
  ( trap '' XFSZ; ulimit -f 4; exec "$BIN" export $fmt --input "$TMP/ref" --output "$out" --device cpu ) \
    2>"$TMP/err.exportfull.$fmt"
  rc=$?
  if [ $rc = 0 ] || died $rc; then
    bad "export $fmt under a file size limit: exit $rc"
  else
    [ ! -e "$out" ] || bad "export $fmt under a file size limit: $out exists"
    [ ! -e "$out.tmp" ] || bad "export $fmt under a file size limit: $out.tmp was left behind"
    ok "export $fmt under a file size limit: exit $rc, no output, $(grep -v '^export:' "$TMP/err.exportfull.$fmt" | head -1)"
  fi
done
printf 'q1\tdog food\nq2\twhat is a cat\n' >"$TMP/topics.tsv"
published "queries" "$e/topics.anserini" "$BIN" queries --model "$MODEL" --input "$TMP/topics.tsv" \
  --output "$e/topics.anserini" --format anserini --device cpu

if [ $failures != 0 ]; then
  echo "test_faults: $failures failure(s)" >&2
  exit 1
fi
echo "test_faults: all passed"
