#!/bin/bash
# A real Slurm cluster on localhost (docs/scale-out.md, "Tested on a real Slurm"): munged, slurmctld and slurmd
# started here with a generated minimal slurm.conf (one node, 2 CPUs, private ports and state in a temporary
# folder), then `diffgentor edit` over one manifest with a tiny bundle:
#   1. sbatch --array=0-3 with no rank flags: every row done exactly once across the four tasks;
#   2. the same with one array task requeued while it runs (scontrol requeue): still every row once, nothing lost;
#   3. srun -n 2 (SLURM_PROCID / SLURM_NTASKS): every row once.
# Needs root (the daemons) and Debian's slurmctld, slurmd, slurm-client and munge, which `./setup.sh test`
# installs.   tests/slurm/slurm_test.sh <diffgentor binary> <work dir>
set -euo pipefail
BIN=$(readlink -f "$1")
W=$(readlink -f "$2")
fail() { echo "slurm test: FAILED: $*" >&2; exit 1; }
for tool in munged munge slurmctld slurmd sbatch srun squeue scontrol sinfo; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (./setup.sh test installs slurmctld, slurmd, slurm-client and munge)"
done
[ "$(id -u)" -eq 0 ] || fail "starting munged, slurmctld and slurmd needs root (CI runs as root)"
rm -rf "$W" && mkdir -p "$W"/{state,spool,log}

cleanup() {
  for pid in "$W"/slurmd.pid "$W"/slurmctld.pid "$W"/munged.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
}
trap cleanup EXIT

# munge with its own key, socket and files
dd if=/dev/urandom of="$W/munge.key" bs=1 count=1024 2>/dev/null && chmod 400 "$W/munge.key"
munged --force --socket="$W/munge.sock" --key-file="$W/munge.key" --log-file="$W/log/munged.log" \
  --pid-file="$W/munged.pid" --seed-file="$W/munge.seed" || fail "munged did not start: $(cat "$W/log/munged.log")"

port=$((20000 + RANDOM % 20000))
host=$(hostname -s)
cat > "$W/slurm.conf" <<CONF
ClusterName=dgtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$W/munge.sock
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobRequeue=1
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=dg Nodes=ALL Default=YES MaxTime=15 State=UP
CONF
export SLURM_CONF="$W/slurm.conf"
slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start: $(tail -5 "$W/log/slurmctld.log")"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start: $(tail -5 "$W/log/slurmd.log")"
for _ in $(seq 60); do
  sinfo -h -o %T 2>/dev/null | grep -q idle && break
  sleep 0.5
done
sinfo -h -o %T | grep -q idle || fail "the node never became idle: $(sinfo 2>&1; tail -5 "$W/log/slurmd.log")"
echo "slurm test: cluster up ($(sinfo -h -o '%P %D %c %T'))"

# a tiny bundle and a manifest of 16 rows over the example images
"$BIN" make-tiny --model_type qwen_singleimg --out "$W/bundle" >/dev/null
rows=16
{
  echo "index,image,instruction"
  for i in $(seq 0 $((rows - 1))); do echo "$i,$W/img.png,row $i"; done
} > "$W/m.csv"
cp "$(dirname "$0")/../../examples/images/sunset.png" "$W/img.png"

edit() {  # the same command line everywhere: no rank flags, Slurm's environment gives the shard
  echo "\"$BIN\" edit --model_name \"$W/bundle\" --model_type qwen_singleimg --input \"$W/m.csv\" --output_dir \"$1\"" \
    "--device cpu --torch_dtype float32 --threads 1 --seed 7 --num_inference_steps $2"
}

# every row once: 16 records with distinct indices, every image present, and each index finished ("index N ok")
# exactly once over all task logs
check_once() {
  local out=$1 logs=$2 shards=$3
  local n
  n=$(tail -n +2 "$out/results.csv" | cut -d, -f1 | sort -u | wc -l)
  [ "$n" -eq $rows ] || fail "$out/results.csv has $n distinct rows, not $rows"
  [ "$(ls "$out"/*.png | wc -l)" -eq $rows ] || fail "$out holds $(ls "$out"/*.png | wc -l) images, not $rows"
  for i in $(seq 0 $((rows - 1))); do
    local runs
    runs=$(cat $logs | grep -c " index $i ok " || true)
    [ "$runs" -eq 1 ] || fail "row $i was made $runs times ($out)"
  done
  for r in $(seq 0 $((shards - 1))); do
    [ -f "$out/results.shard-$r-of-$shards.csv" ] || fail "no journal of shard $r of $shards in $out"
  done
}

wait_job() {  # until no task of job $1 is queued or running (at most $2 s)
  for _ in $(seq $(( $2 * 2 ))); do
    [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0
    sleep 0.5
  done
  fail "job $1 did not finish in $2 s: $(squeue -j "$1")"
}

# 1. an array of four shards
job=$(sbatch --parsable --array=0-3 --cpus-per-task=1 -o "$W/a_%a.log" --wrap "$(edit "$W/out_array" 2)")
wait_job "$job" 300
grep -q "shard 2 of 4 (slurm-array)" "$W/a_2.log" || fail "task 2 did not take its shard from Slurm: $(cat "$W/a_2.log")"
check_once "$W/out_array" "$W/a_*.log" 4
echo "slurm test: sbatch --array=0-3: every row once"

# 2. task 1 requeued while it runs: it is stopped (SIGTERM: the rows in flight finish and are recorded) and run
#    again, and the rows it had finished are not made again
job=$(sbatch --parsable --requeue --open-mode=append --array=0-3 --cpus-per-task=1 -o "$W/r_%a.log" \
  --wrap "$(edit "$W/out_requeue" 30)")
journal="$W/out_requeue/results.shard-1-of-4.csv"
for _ in $(seq 600); do
  [ -f "$journal" ] && [ "$(wc -l < "$journal")" -ge 2 ] && break
  sleep 0.1
done
[ -f "$journal" ] && [ "$(wc -l < "$journal")" -ge 2 ] || fail "task 1 finished no row to requeue after"
[ "$(wc -l < "$journal")" -le 4 ] || fail "task 1 finished before it could be requeued; make its rows slower"
scontrol requeue "${job}_1" || fail "scontrol requeue ${job}_1 failed"
# A requeued job waits out a begin-time delay (two minutes here); make it eligible now.
for _ in $(seq 100); do
  [ "$(squeue -h -j "${job}_1" -o %T 2>/dev/null)" = PENDING ] && break
  sleep 0.1
done
scontrol update JobId="${job}_1" StartTime=now 2>/dev/null || true
wait_job "$job" 600
grep -q "interrupted" "$W/r_1.log" || fail "task 1 was not stopped by the requeue: $(cat "$W/r_1.log")"
[ "$(grep -c "shard 1 of 4 (slurm-array)" "$W/r_1.log")" -eq 2 ] || fail "task 1 did not run twice: $(cat "$W/r_1.log")"
check_once "$W/out_requeue" "$W/r_*.log" 4
echo "slurm test: task 1 requeued mid-run: every row once, nothing lost"

# 3. one step of two tasks
srun -n 2 --cpus-per-task=1 -o "$W/s_%t.log" bash -c "$(edit "$W/out_srun" 2)" || fail "srun -n 2 failed: $(cat "$W"/s_*.log)"
grep -q "shard 1 of 2 (slurm)" "$W/s_1.log" || fail "srun task 1 did not take its shard from Slurm: $(cat "$W/s_1.log")"
check_once "$W/out_srun" "$W/s_*.log" 2
echo "slurm test: srun -n 2: every row once"
echo "slurm test: passed"
