#!/usr/bin/env bash
# GPU acceptance check (issue 23), for the first machine with an NVIDIA GPU: at most ~8 minutes on one H100.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # default OUT_DIR: a new folder under /tmp
#
# What it runs (random ViT-B/16 weights, `--pretrained none`: speed and memory figures, not accuracies):
#   1. bench perf --method all --reference coop in fp32, fp16 and bf16 (peak GPU memory included)
#   2. RMAdapter vs MMA: step time and peak memory ratios (the paper reports 1.05 / 1.03)
#   3. evaluation throughput from the decoded-image cache vs a bare encode_image loop (goal: within 10 %)
#   4. a toy base-to-novel sweep of zeroshot, coop, rmadapter on cuda vs the same sweep on the CPU (within 1 point)
#   5. the pool executor with one GPU (its records equal the local cuda run's)
# Every step has its own time limit; a step that fails or times out is marked in the table and the others still run.
# Prints one summary table at the end; each step's full output is in OUT_DIR/<step>.log. Exit 1 if any step failed.
#
# Not yet run anywhere: no machine this project was developed on has a GPU. `train.precision=fp16` exists once the
# precision rewrite (issue 18) is merged; before that the fp16 row fails with a config error and says so.
set -euo pipefail

if ! command -v bench >/dev/null; then
  echo "bench is not on PATH: pip install -e . first" >&2
  exit 2
fi
DEV=${GPU_CHECK_DEVICE:-cuda}  # `GPU_CHECK_DEVICE=cpu` only tests this script's plumbing (steps time out on a CPU)
if [ "$DEV" = cuda ] && ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "no CUDA GPU visible to torch: this check needs one (nvidia-smi, CUDA_VISIBLE_DEVICES)" >&2
  exit 2
fi

OUT=${1:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
mkdir -p "$OUT"
export BENCH_TOY_ROOT="$OUT/toy"  # toy data written once, shared by the cpu and cuda sweeps
SUMMARY="$OUT/summary.tsv"
printf 'step\tstatus\tseconds\tresult\n' >"$SUMMARY"
FAILED=0
HERE=$(cd "$(dirname "$0")" && pwd)
TOY=(--suite toy --method zeroshot,coop,rmadapter --protocol base2novel --datasets toy_shapes,toy_counts --seeds 1)

# step NAME LIMIT_S RESULT_CMD -- COMMAND...: run COMMAND under `timeout`, log it, add a row (RESULT_CMD's output).
step() {
  local name=$1 limit=$2 result=$3
  shift 4
  local t0 rc=0
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1 || rc=$?
  local status=ok
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then status="TIMEOUT(${limit}s)"; elif [ "$rc" -ne 0 ]; then status="FAILED(rc=$rc)"; fi
  [ "$status" = ok ] || FAILED=1
  local summary
  summary=$(eval "$result" 2>/dev/null | tr '\t\n' '  ' | cut -c1-160) || true
  [ "$status" = ok ] || summary="$(tail -n 1 "$OUT/$name.log" | cut -c1-160)"
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(($(date +%s) - t0))" "$summary" >>"$SUMMARY"
}

# 4a (background, CPU): the reference sweep runs on the CPU cores while the GPU steps run.
timeout --kill-after=10 420 bench run "${TOY[@]}" --device cpu --results "$OUT/toy-cpu" >"$OUT/toy-cpu.log" 2>&1 &
CPU_PID=$!

perf_row() {  # the rows of a bench perf table for rmadapter, mma and coop, squeezed
  grep -E '^ *[│|] *(rmadapter|mma|coop) ' "$1" | tr -s ' ' | cut -c1-150
}
for p in fp32 fp16 bf16; do
  step "perf-$p" 85 "perf_row $OUT/perf-$p.log" -- \
    bench perf --method all --reference coop --backbone ViT-B-16 --pretrained none --device $DEV --steps 5 \
      --cfg-options "train.precision=$p"
done
step "rmadapter-vs-mma" 35 "grep -E '^ *[│|] *rmadapter ' $OUT/rmadapter-vs-mma.log | tr -s ' '" -- \
  bench perf --method rmadapter --reference mma --backbone ViT-B-16 --pretrained none --device $DEV --steps 5
step "eval-throughput" 40 "tail -n 1 $OUT/eval-throughput.log" -- \
  python "$HERE/eval_throughput.py" --backbone ViT-B-16 --device $DEV --n 4096
step "toy-cuda" 70 "grep -E 'done' $OUT/toy-cuda.log | tail -n 1" -- \
  bench run "${TOY[@]}" --device $DEV --results "$OUT/toy-cuda"
step "pool-1-gpu" 40 "python $HERE/compare_records.py $OUT/toy-cuda $OUT/toy-pool --tolerance 0" -- \
  bench run "${TOY[@]}" --executor pool --gpus 0 --results "$OUT/toy-pool"

cpu_rc=0
wait "$CPU_PID" || cpu_rc=$?
step "toy-cuda-vs-cpu" 30 "python $HERE/compare_records.py $OUT/toy-cuda $OUT/toy-cpu --tolerance 1" -- \
  bash -c "[ $cpu_rc -eq 0 ] || { echo 'cpu sweep failed (rc=$cpu_rc): see $OUT/toy-cpu.log'; exit 1; }; \
           python '$HERE/compare_records.py' '$OUT/toy-cuda' '$OUT/toy-cpu' --tolerance 1"

echo
python -c 'import torch; gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"; print(f"# {gpu} · torch {torch.__version__} · CUDA {torch.version.cuda}")'
column -t -s $'\t' "$SUMMARY"
echo "# logs: $OUT"
exit "$FAILED"
