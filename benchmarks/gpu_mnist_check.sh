#!/usr/bin/env bash
# The next GPU call of issues 13 and 18, prepared so that a lent device is used for one command of
# about 8 minutes (benchmarks/MNIST_SWEEP.md, "CPU against GPU"):
#
#   1. ten seeds of infogan-mnist as shipped with TF32 off (NVIDIA_TF32_OVERRIDE=0: cuDNN and cuBLAS in
#      full float32), to pair seed by seed with the ten TF32 seeds of 2026-12-04 (the same torch and
#      device give the same draws: codes and shifts come from per-step CUDA generators);
#   2. at the same time, five seeds of the research loop (benchmarks/mnist_sweep.py, TR2: batch 128,
#      sigma fixed, shift 2), which reached 97.3% in 3 of 3 seeds on an H100: the loop and the runner on
#      one device and one torch;
#   3. then one seed alone, eager, 5,000 steps (issue 18: the one-seed figure after the one-hot change).
#
# Usage (from the repository root; results and logs under OUT, a summary printed at the end):
#     OUT=/tmp/out DATA=../shared/data/mnist bash benchmarks/gpu_mnist_check.sh
# A dry run of the whole script on a CPU, in about two minutes:
#     OUT=/tmp/dry DATA=../shared/data/mnist DEVICE=cpu STEPS=20 SEEDS=1 LOOP_SEEDS=1 bash benchmarks/gpu_mnist_check.sh
set -u
OUT=${OUT:?set OUT to an empty folder for the results}
DATA=${DATA:-../shared/data/mnist}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-5000}
SEEDS=${SEEDS:-10}
LOOP_SEEDS=${LOOP_SEEDS:-5}
EVAL_EVERY=$(( STEPS < 500 ? STEPS : 500 ))
mkdir -p "$OUT/loop"
accelerator=$([ "$DEVICE" = cpu ] && echo cpu || echo cuda)

# 1 and 2 at once: ten runner seeds (one process each) and the research loop's seeds share the device.
NVIDIA_TF32_OVERRIDE=0 gan-recipes sweep infogan-mnist --seeds "0-$((SEEDS - 1))" --jobs "$SEEDS" \
    --out "$OUT/tf32-off" --device "$DEVICE" \
    --set "data.root=\"$DATA\"" --set 'data.split="test"' --set data.download=false \
    --set "trainer.max_steps=$STEPS" --set "trainer.eval_every=$EVAL_EVERY" \
    --set "trainer.accelerator=\"$accelerator\"" > "$OUT/tf32-off.txt" 2>&1 &
sweep=$!
loops=()
for seed in $(seq 0 $((LOOP_SEEDS - 1))); do
    python benchmarks/mnist_sweep.py --name loop --seed "$seed" --device "$DEVICE" --data "$DATA/MNIST/raw" \
        --batch 128 --fixed-std --translate 2 --steps "$STEPS" --eval-every "$EVAL_EVERY" --threads 1 \
        --log "$OUT/loop/loop_s$seed.jsonl" > "$OUT/loop/loop_s$seed.out" 2>&1 &
    loops+=($!)
done
wait "$sweep"; echo "runner sweep (TF32 off): exit $?"
for pid in "${loops[@]}"; do wait "$pid"; done

# 3: one seed alone.
python benchmarks/gpu_throughput.py --steps "$STEPS" --modes eager --jobs --data "$DATA" --accelerator "$accelerator" --peak-tflops 67 \
    > "$OUT/throughput.txt" 2>&1 || echo "throughput: failed (see throughput.txt)"

tail -n 30 "$OUT/tf32-off.txt"
python - "$OUT/loop" <<'EOF'
import json, sys
from pathlib import Path
print("research loop: accuracy (%) on the 10,000 digits every eval step")
for log in sorted(Path(sys.argv[1]).glob("loop_s*.jsonl")):
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    evals = [r for r in rows if "acc_eval" in r]
    print(log.stem, " ".join(f"{r['step']}:{100 * r['acc_eval']:.1f}" for r in evals))
EOF
tail -15 "$OUT/throughput.txt"
