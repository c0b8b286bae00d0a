#!/usr/bin/env bash
# The GPU round: one command on a borrowed GPU machine (an H200), about 9 minutes in all, results in $OUT.
#
# Prepared on the CPU machine with `bash benchmarks/gpu_prepare.sh --download` (data + wheels in .gpu/); run
# with the device tool: command `bash benchmarks/gpu_round.sh`, carry [".gpu"], timeout_s 600.
#
#  1. bench_train.py, 2D recipe on CUDA: it/s with AMP off and bfloat16 AMP on            (~1 min)
#  2. trains model_specs/unet2d_bcd_nuclei_wide.yaml (32 features, 256x256 patches) with AMP for a fixed
#     wall-time budget (TRAIN_MIN, default 4 min); the iteration count is set from the measured speed so
#     the cosine schedule ends inside the budget; a slim checkpoint goes to $OUT every minute       (~5 min)
#  3. bench_predict.py --gpu-only: runner vs bioimageio.core on CUDA, same packages, outputs compared (~1 min)
#  4. the gpu-marked tests                                                                           (~1 min)
#
# $OUT returns at most 8 files of 16 MiB: round.md (every table and log line), train_log.csv and the
# checkpoint parts ckpt.part00.. (benchmarks/gpu_checkpoint.py join them back into a run folder here).
# Back on the CPU: join, `runner export`, `runner tune --held-out --validate dsb2018/val`, compare, ship.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
TRAIN_MIN=${TRAIN_MIN:-4}
mkdir -p "$OUT"
LOG="$OUT/round.md"
T0=$(date +%s)
say() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$LOG"; }
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD

if ls .gpu/whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .gpu/whl/*.whl || { say "wheel install failed"; exit 1; }
    export PYTHONPATH=/tmp/site:$PWD
fi
mkdir -p /tmp/data && tar -xzf .gpu/dsb2018.tar.gz -C /tmp/data || { say "no .gpu/dsb2018.tar.gz"; exit 1; }
say "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
say "torch $(python3 -c 'import torch; print(torch.__version__, torch.version.cuda)')"

# 1. training throughput with and without AMP (2D recipe; bench_train uses 40 of the images)
say "bench_train (cuda, AMP off / bf16)"
timeout 150 python3 benchmarks/bench_train.py --recipes 2d --devices cuda --iterations 10 --modes ours \
    --data /tmp/data/dsb2018 2>>"$LOG" | tee -a "$LOG"

# 2. the wide recipe: speed probe (60 s) -> iterations that fit the budget, then the budgeted run
say "speed probe of the wide recipe"
timeout 120 python3 -m runner train model_specs/unet2d_bcd_nuclei_wide.yaml --data /tmp/data/dsb2018 \
    --out /tmp/probe --device cuda --amp --max-minutes 0.75 --iterations 100000 --no-progress >>"$LOG" 2>&1
ITS=$(python3 - "$TRAIN_MIN" <<'EOF'
import csv, sys
rows = [r for r in csv.DictReader(open("/tmp/probe/train_log.csv")) if r.get("elapsed_s")]
a, b = rows[len(rows) // 3], rows[-1]  # skip the warm-up (cudnn autotuning, first batches)
rate = (float(b["iteration"]) - float(a["iteration"])) / (float(b["elapsed_s"]) - float(a["elapsed_s"]))
print(max(500, int(rate * 60 * float(sys.argv[1]) * 0.92)))
EOF
) || ITS=3000
say "training $ITS iterations (budget $TRAIN_MIN min, AMP, checkpoint to \$OUT every minute)"
( while sleep 60; do python3 benchmarks/gpu_checkpoint.py slim /tmp/wide "$OUT" >/dev/null 2>&1; done ) &
SLIM=$!
timeout $(python3 -c "print(int(float('$TRAIN_MIN') * 60 + 90))") python3 -m runner train \
    model_specs/unet2d_bcd_nuclei_wide.yaml --data /tmp/data/dsb2018 --out /tmp/wide --device cuda --amp \
    --iterations "$ITS" --max-minutes "$TRAIN_MIN" --checkpoint-minutes 1 --no-progress >>"$LOG" 2>&1
kill $SLIM 2>/dev/null
python3 benchmarks/gpu_checkpoint.py slim /tmp/wide "$OUT" | tee -a "$LOG"
tail -3 /tmp/wide/train_log.csv >>"$LOG"

# 3. inference: runner vs bioimageio.core on CUDA
say "bench_predict --gpu-only"
timeout 150 python3 benchmarks/bench_predict.py --gpu-only 2>>"$LOG" | tee -a "$LOG"

# 4. gpu-marked tests
say "pytest -m gpu"
timeout 120 python3 -m pytest -m gpu -q -n 0 -p no:cacheprovider tests 2>&1 | tail -15 | tee -a "$LOG"
say "done"
ls -la "$OUT" | tee -a "$LOG"
