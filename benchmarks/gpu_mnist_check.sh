#!/usr/bin/env bash
# The next GPU call of issues 13 and 18, prepared so that a lent device is used for one command of
# about 7 minutes:
#
#   1. ten seeds of infogan-mnist as shipped (with its invariance term; TF32 as PyTorch sets it, as users
#      run it), all at once, scored by `gan-recipes eval` on the 10,000 digits: issue 13's ten-seed table
#      on a GPU, beside the ten seeds of 2026-12-04 before the term (README Results);
#   2. then one seed alone, eager, 5,000 steps (issue 18's one-seed figure, now with the term).
#
# With TF32_OFF=1 part 1 runs with NVIDIA_TF32_OVERRIDE=0 (cuDNN and cuBLAS in full float32) instead.
# SETS="key=value ..." adds recipe settings to part 1 (a candidate over ten seeds, e.g.
# SETS="invariance.shear=20"); SKIP_ALONE=1 leaves out part 2.
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
[ "${TF32_OFF:-0}" = 1 ] && tf32=(env NVIDIA_TF32_OVERRIDE=0)
extra=()
for setting in ${SETS:-}; do extra+=(--set "$setting"); done

# 1: the ten seeds, one process each, sharing the device.
"${tf32[@]}" gan-recipes sweep infogan-mnist --seeds "0-$((SEEDS - 1))" --jobs "$SEEDS" \
    --out "$OUT/seeds" --device "$DEVICE" \
    --set "data.root=\"$DATA\"" --set 'data.split="test"' --set data.download=false \
    --set "trainer.max_steps=$STEPS" --set "trainer.eval_every=$EVAL_EVERY" \
    --set "trainer.accelerator=\"$accelerator\"" "${extra[@]}" > "$OUT/seeds.txt" 2>&1
echo "sweep: exit $?"

# 2: one seed alone.
if [ "${SKIP_ALONE:-0}" != 1 ]; then
    python benchmarks/gpu_throughput.py --steps "$STEPS" --modes eager --jobs --data "$DATA" --accelerator "$accelerator" --peak-tflops 67 \
        > "$OUT/throughput.txt" 2>&1 || echo "throughput: failed (see throughput.txt)"
fi

tail -n 30 "$OUT/seeds.txt"
for seed in $(seq 0 $((SEEDS - 1))); do
    python benchmarks/mnist_codes.py "$OUT/seeds/seed-$seed/generator.safetensors" 2>&1 | tail -n 3
done
[ -f "$OUT/throughput.txt" ] && tail -n 15 "$OUT/throughput.txt"
