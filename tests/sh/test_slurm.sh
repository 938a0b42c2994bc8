#!/usr/bin/env bash
# test_slurm: scripts/slurm/expand.sbatch on a real Slurm (Debian's slurm-wlm and munge,
# installed by scripts/install_deps.sh when missing), a throwaway single-node cluster whose
# config, state, spool, logs and munge key live under the test's temporary directory; munged,
# slurmctld and slurmd are started here and stopped by their PIDs on exit. On the CPU:
#   - a 3-task array (0-2) with an afterany verify job submitted right behind it;
#   - task 1 SIGKILLs itself between its 2nd and 3rd shard (the SPLADEX_TEST_KILL_POINT hook, set
#     by a wrapper for that task's first attempt only);
#   - task 2 is cancelled by `scontrol requeue` while it runs, and runs again (the afterany verify
#     waits for it; its log, opened in append mode, keeps both attempts);
#   - the verify job reports worker 1's missing shards and names array index 1;
#   - index 1 alone is resubmitted (`sbatch --array=1`) from a moved `cmake --install` tree with
#     --export=NONE: it runs as worker 1/3 (not 0/1) with the installed binary, and leaves the
#     others' files alone; a last verify passes and the shards equal a single-process run.
# Config chosen for a container without systemd or cgroup delegation: proctrack/linuxproc,
# task/none, jobacct_gather/none, no accounting; SlurmdParameters=config_overrides (3 CPUs
# declared on a smaller machine, so the 3 tasks run at once); cred_expire=5 in AuthInfo (a
# requeued job waits cred_expire + 1 s before it may start again; the default is 120 s) and
# sched_interval=2 (a pending job is looked at every 2 s, not 60, when no other event comes).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

for tool in munged slurmctld slurmd sbatch scontrol squeue; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "test_slurm: $tool is missing: scripts/install_deps.sh (slurm-wlm, munge)" >&2
    bash scripts/install_deps.sh >&2 || fail "scripts/install_deps.sh failed"
    break
  fi
done
for tool in munged slurmctld slurmd sbatch scontrol squeue; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is still missing after scripts/install_deps.sh"
done

# ---- the cluster ----
C=$TMP/cluster
mkdir -p "$C/munge" "$C/state" "$C/spool" "$C/log"
chmod 700 "$C/munge"
head -c 1024 /dev/urandom >"$C/munge/munge.key"
chmod 400 "$C/munge/munge.key"
pids=()
stop_cluster() {
  if [ -n "${SLURM_CONF:-}" ] && [ -n "${slurmctld_pid:-}" ]; then
    scancel --user="$(id -un)" >/dev/null 2>&1
    for _ in $(seq 100); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$TMP"
}
trap stop_cluster EXIT

munged -F -f --socket="$C/munge/munge.socket.2" --key-file="$C/munge/munge.key" \
  --log-file="$C/log/munged.log" --pid-file="$C/munge/munged.pid" --seed-file="$C/munge/seed" \
  >"$C/log/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$C/munge/munge.socket.2" ] && break; sleep 0.1; done
[ -S "$C/munge/munge.socket.2" ] || { cat "$C/log/munged.out" >&2; fail "munged did not start"; }

host=$(hostname -s)
user=$(id -un)
read -r port_ctld port_d < <(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
cat >"$C/slurm.conf" <<EOF
ClusterName=spladextest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port_ctld
SlurmdPort=$port_d
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$C/munge/munge.socket.2,cred_expire=5
CredType=cred/munge
StateSaveLocation=$C/state
SlurmdSpoolDir=$C/spool
SlurmctldPidFile=$C/slurmctld.pid
SlurmdPidFile=$C/slurmd.pid
SlurmctldLogFile=$C/log/slurmctld.log
SlurmdLogFile=$C/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
SchedulerParameters=sched_interval=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=3 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$C/slurm.conf
slurmctld -D -i >"$C/log/slurmctld.out" 2>&1 &
slurmctld_pid=$!
pids+=($slurmctld_pid)
slurmd -D -N "$host" >"$C/log/slurmd.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do sinfo -h -o %T 2>/dev/null | grep -qx idle && break; sleep 0.2; done
sinfo -h -o %T 2>/dev/null | grep -qx idle || {
  tail -20 "$C/log/slurmctld.out" "$C/log/slurmctld.log" "$C/log/slurmd.out" "$C/log/slurmd.log" >&2
  fail "the single-node cluster did not come up"; }
echo "ok: single-node Slurm up ($host, ports $port_ctld/$port_d)"

# wait_jobs ID...: until none of the jobs is in the queue (at most 180 s)
wait_jobs() {
  local ids
  ids=$(IFS=,; echo "$*")
  for _ in $(seq 900); do [ -z "$(squeue -h -j "$ids" 2>/dev/null)" ] && return 0; sleep 0.2; done
  squeue >&2
  fail "jobs $ids still queued after 180 s"
}

# ---- the job ----
# 400 docs a worker: more than one encoder window (256 docs and up), so a worker is mid-job when
# its first shard appears
python3 tests/sh/shards.py corpus "$TMP/c.tsv" 1200 13
opts=(--shard-size 100 --threads 1 --batch-tokens 2048 "${MODEL_FLAGS[@]}")
"$BIN" expand --model "$MODEL" --input "$TMP/c.tsv" --output "$TMP/ref" --device cpu --quiet "${opts[@]}" \
  || fail "the single-process run failed"
OUT=$TMP/out
mkdir -p "$OUT" "$TMP/logs"

# the binary for the array: task 1's first attempt SIGKILLs itself after its 2nd shard's rename;
# task 2's first attempt is stopped (SIGSTOP) once its first shard is there, so that the requeue
# below cancels it mid-job (Slurm sends SIGCONT and SIGTERM to every process of the job)
cat >"$TMP/wrap" <<EOF
#!/bin/bash
if [ "\${SLURM_ARRAY_TASK_ID:-}" = 1 ] && mkdir "$TMP/task1-killed" 2>/dev/null; then
  export SPLADEX_TEST_KILL_POINT=finished:2
fi
if [ "\${SLURM_ARRAY_TASK_ID:-}" = 2 ] && mkdir "$TMP/task2-stopped" 2>/dev/null; then
  "$BIN" "\$@" &
  pid=\$!
  while kill -0 \$pid 2>/dev/null && [ ! -f "$OUT/shard-00002.h5" ]; do sleep 0.01; done
  kill -STOP \$pid
  touch "$TMP/task2-stopped/now"
  wait \$pid
  exit
fi
exec "$BIN" "\$@"
EOF
chmod +x "$TMP/wrap"
SB=scripts/slurm/expand.sbatch
jid=$(sbatch --parsable --array=0-2 --export=ALL,SPLADEX="$TMP/wrap" --output="$TMP/logs/task-%a.log" \
      "$SB" "$MODEL" "$TMP/c.tsv" "$OUT" --device cpu "${opts[@]}") || fail "sbatch of the array failed"
vid=$(sbatch --parsable --dependency=afterany:"$jid" --export=ALL,SPLADEX="$TMP/wrap" \
      --output="$TMP/logs/verify1.log" "$SB" --verify "$OUT") || fail "sbatch of the verify job failed"

# task 2: requeued (cancelled, back in the queue) once its first shard is there
for _ in $(seq 600); do [ -f "$TMP/task2-stopped/now" ] && break; sleep 0.1; done
[ -f "$TMP/task2-stopped/now" ] || { cat "$TMP/logs/task-2.log" >&2; fail "task 2 did not reach its first shard"; }
scontrol requeue "${jid}_2" || fail "scontrol requeue ${jid}_2 failed"
wait_jobs "$jid" "$vid"

grep -q "worker 1/3" "$TMP/logs/task-1.log" || { cat "$TMP/logs/task-1.log" >&2; fail "task 1 did not run as worker 1/3"; }
[ -d "$TMP/task1-killed" ] && [ ! -f "$OUT/shard-00010.h5" ] || fail "task 1 was not killed before its 3rd shard"
[ "$(grep -c '^expand.sbatch: array job' "$TMP/logs/task-2.log")" = 2 ] || { cat "$TMP/logs/task-2.log" >&2; fail "task 2's log does not hold both attempts (--open-mode=append, requeue)"; }
grep -q "(restart 1)" "$TMP/logs/task-2.log" || fail "task 2 was not restarted"
grep -q "interrupted: [0-9]* shard(s) finished in this run" "$TMP/logs/task-2.log" &&
  grep -q "this process wrote [1-9][0-9]* shard(s)" "$TMP/logs/task-2.log" || { cat "$TMP/logs/task-2.log" >&2; fail "task 2 was not cancelled mid-job"; }
grep -q "device cpu" "$TMP/logs/task-0.log" || fail "the banner does not name the device"
# the afterany verify ran after the requeued task 2, found only worker 1's shards missing
grep -q "missing (worker 1/3's)" "$TMP/logs/verify1.log" || { cat "$TMP/logs/verify1.log" >&2; fail "the verify job did not report worker 1's missing shards"; }
grep -q "worker [02]/3" "$TMP/logs/verify1.log" && { cat "$TMP/logs/verify1.log" >&2; fail "the verify job reports shards of workers 0 or 2 (it ran before the requeued task?)"; }
grep -q "sbatch --array=1 " "$TMP/logs/verify1.log" || { cat "$TMP/logs/verify1.log" >&2; fail "the verify job does not name index 1 to resubmit"; }
echo "ok: array with a killed task and a requeued one; the afterany verify names index 1"

# ---- index 1 resubmitted alone, from a moved install, --export=NONE ----
cmake --install "${SPLADEX_BUILD_DIR:-$(dirname "$BIN")}" --prefix "$TMP/inst0" >/dev/null || fail "cmake --install failed"
mv "$TMP/inst0" "$TMP/inst"
ISB=$TMP/inst/share/spladex/slurm/expand.sbatch
cp "$OUT/shard-00005.h5" "$OUT/shard-00005.h5.tmp" # stands for worker 2 writing shard 5 again
jid2=$(sbatch --parsable --array=1 --export=NONE --output="$TMP/logs/task-1-again.log" \
       "$ISB" "$MODEL" "$TMP/c.tsv" "$OUT" --device cpu "${opts[@]}") || fail "sbatch --array=1 failed"
wait_jobs "$jid2"
grep -q "spladex expand: .*worker 1/3" "$TMP/logs/task-1-again.log" || { cat "$TMP/logs/task-1-again.log" >&2; fail "the resubmitted index 1 did not run as worker 1/3"; }
grep -q "$TMP/inst/share/spladex/slurm/../../../bin/spladex" "$TMP/logs/task-1-again.log" || { cat "$TMP/logs/task-1-again.log" >&2; fail "the resubmitted task did not use the installed binary"; }
[ -f "$OUT/shard-00005.h5.tmp" ] || fail "the resubmitted worker 1 removed worker 2's .tmp"
rm "$OUT/shard-00005.h5.tmp"
vid2=$(sbatch --parsable --dependency=afterany:"$jid2" --export=NONE --output="$TMP/logs/verify2.log" \
       "$ISB" --verify "$OUT") || fail "sbatch of the second verify failed"
wait_jobs "$vid2"
grep -q "OK: 12 shards, 1200 docs, 3 workers" "$TMP/logs/verify2.log" || { cat "$TMP/logs/verify2.log" >&2; fail "the last verify did not pass"; }
"$BIN" verify "$OUT" >/dev/null || fail "spladex verify fails on the result"
python3 tests/sh/shards.py compare "$TMP/ref" "$OUT" "$TMP/c.tsv" || fail "the array's shards differ from a single process"
echo "ok: index 1 resubmitted (--export=NONE, installed tree) as worker 1/3; verify passes; == 1 process"
echo "test_slurm: all passed"
