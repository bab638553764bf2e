#!/usr/bin/env bash
# The next GPU call of issues 13 and 18, prepared so that a lent device is used for one command of
# about 7 minutes:
#
#   1. ten seeds of infogan-mnist as shipped (since 2026-12-04: the continuous codes' weight ramped up
#      over the first 2,000 steps, regularizer.cont_warmup), all at once on the device, with PyTorch's
#      float32 defaults as a user runs it: issue 13's ten-seed table on a GPU for the new recipe, to
#      set beside the ten GPU seeds of the recipe before (README Results, 5 of 10 at 95%);
#   2. then one seed alone, eager, 5,000 steps (issue 18: the one-seed figure after the one-hot change).
#
# TF32=0 in the environment runs step 1 with TF32 off (NVIDIA_TF32_OVERRIDE=0) instead.
#
# Usage (from the repository root; results and logs under OUT, a summary printed at the end):
#     OUT=/tmp/out DATA=../shared/data/mnist bash benchmarks/gpu_mnist_check.sh
# A dry run of the whole script on a CPU, in about two minutes:
#     OUT=/tmp/dry DATA=../shared/data/mnist DEVICE=cpu STEPS=20 SEEDS=1 bash benchmarks/gpu_mnist_check.sh
set -u
OUT=${OUT:?set OUT to an empty folder for the results}
DATA=${DATA:-../shared/data/mnist}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-5000}
SEEDS=${SEEDS:-10}
EVAL_EVERY=$(( STEPS < 500 ? STEPS : 500 ))
mkdir -p "$OUT"
accelerator=$([ "$DEVICE" = cpu ] && echo cpu || echo cuda)
tf32=()
[ "${TF32:-1}" = 0 ] && tf32=(env NVIDIA_TF32_OVERRIDE=0)

# 1: ten runner seeds (one process each) share the device.
"${tf32[@]}" gan-recipes sweep infogan-mnist --seeds "0-$((SEEDS - 1))" --jobs "$SEEDS" \
    --out "$OUT/seeds" --device "$DEVICE" \
    --set "data.root=\"$DATA\"" --set 'data.split="test"' --set data.download=false \
    --set "trainer.max_steps=$STEPS" --set "trainer.eval_every=$EVAL_EVERY" \
    --set "trainer.accelerator=\"$accelerator\"" > "$OUT/seeds.txt" 2>&1
echo "runner sweep: exit $?"

# 2: one seed alone.
python benchmarks/gpu_throughput.py --steps "$STEPS" --modes eager --jobs --data "$DATA" --accelerator "$accelerator" --peak-tflops 67 \
    > "$OUT/throughput.txt" 2>&1 || echo "throughput: failed (see throughput.txt)"

tail -n 30 "$OUT/seeds.txt"
tail -n 15 "$OUT/throughput.txt"
