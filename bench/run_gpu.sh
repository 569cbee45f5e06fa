#!/usr/bin/env bash
# First light on one CUDA GPU in at most about 8 minutes, every stage under its own time limit:
#
#     bash bench/run_gpu.sh [OUTDIR]        # default first-light-<UTC date>/
#     bash bench/run_gpu.sh --full [OUT.md] # also the whole benchmark suite and the kernel report (much longer)
#
# Stages (bench/first_light.py): versions and the device; correctness of every op in bf16 and fp32 (four processes in
# parallel: compiling dominates); one ViViT-B training step of Models 1 and 3 under autocast, Triton against eager;
# the GPU-only checks of the Triton path (bench/gpu_path_check.py: CUDA autocast, graph-safe dropout seed, device
# guard); a few timed rows against this GPU's measured matmul and copy ceilings. A failing or slow stage does not stop the
# others. OUTDIR gets first-light.json and first-light.md (ready for BENCHMARKS.md), plus each stage's JSON and log.
# Needs only torch and triton (transformers for the model stages); runs from the checkout, no install.
set -uo pipefail
cd "$(dirname "$0")/.."
full=0
if [ "${1:-}" = "--full" ]; then full=1; shift; fi
out="${1:-first-light-$(date -u +%Y%m%d-%H%M)}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
export TRITON_DEFAULT_FP_FUSION=1
py=${PYTHON:-python3}
start=$SECONDS

stage() {  # stage NAME LIMIT_SECONDS ARGS...: one first_light.py stage under a time limit, its log in OUTDIR
    local name=$1 limit=$2
    shift 2
    timeout -k 10 "$limit" "$py" bench/first_light.py "$@" "$out" >"$out/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - start)) s (limit ${limit} s)"
    [ $rc -eq 0 ] || tail -n 5 "$out/$name.log"
}

stage env 45 env
cat "$out/env.log"
for op in attention patch_embed ln_linear ln_mlp; do
    stage "correct-$op" 180 correct "$op" &
done
wait
stage train 100 train
timeout -k 10 120 "$py" bench/gpu_path_check.py >"$out/gpu-path.log" 2>&1
echo "== gpu-path: exit $? after $((SECONDS - start)) s (limit 120 s)"
stage bench 150 bench
"$py" bench/first_light.py report "$out" >/dev/null
status=$?
echo "== first light: $out/first-light.md ($((SECONDS - start)) s, report exit $status)"
cat "$out/first-light.md"

if [ $full -eq 1 ]; then
    echo "== full: GPU correctness suite, kernel report, every benchmark"
    timeout -k 10 900 "$py" -m pytest bench/bench_gpu_correctness.py -q -p no:cacheprovider | tee "$out/full-correctness.log"
    timeout -k 10 900 "$py" -m vivit_kernels.report >"$out/kernel-report.txt"
    timeout -k 10 1800 "$py" -m pytest bench/ -q -p no:cacheprovider --ignore=bench/bench_gpu_correctness.py \
        --bench-report "$out/bench.md" --benchmark-columns=median,iqr,rounds | tee "$out/full-bench.log"
fi
exit $status
