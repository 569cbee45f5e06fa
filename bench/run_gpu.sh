#!/usr/bin/env bash
# Every GPU row of BENCHMARKS.md in one command, on a machine with one CUDA GPU:
#
#     bash bench/run_gpu.sh [OUT.md]
#
# 1. correctness first: every Triton kernel against its fp64 reference on this GPU (stops here on any failure);
# 2. the ahead-of-time kernel report (registers, spills, shared memory, tensor cores; modeled roofline);
# 3. all benchmarks (kernels, models, processor), interleaved ratios, with the measured ceilings of this GPU.
# OUT.md (default bench-gpu-<date>.md) collects the three parts, ready to paste into BENCHMARKS.md's GPU section.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-gpu-$(date -u +%Y%m%d-%H%M).md}"
unset TRITON_INTERPRET
export TRITON_DEFAULT_FP_FUSION=1

python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'bench/run_gpu.sh: no CUDA GPU visible')"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv

echo "== 1/3 correctness of the Triton kernels on this GPU"
python -m pytest bench/bench_gpu_correctness.py -x -q -p no:cacheprovider

echo "== 2/3 kernel report"
python -m vivit_kernels.report > "$out.report.txt"

echo "== 3/3 benchmarks"
python -m pytest bench/ -q -p no:cacheprovider --ignore=bench/bench_gpu_correctness.py \
    --bench-report "$out.bench.md" --benchmark-columns=median,iqr,rounds

{
    echo "## GPU run: $(python -c 'import torch; print(torch.cuda.get_device_name())'), $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Command: \`bash bench/run_gpu.sh\` (correctness suite passed first)."
    echo
    echo "### Benchmarks"
    echo
    cat "$out.bench.md"
    echo
    echo "### Kernel report (\`python -m vivit_kernels.report\`)"
    echo
    echo '```'
    cat "$out.report.txt"
    echo '```'
} > "$out"
rm -f "$out.bench.md" "$out.report.txt"
echo "wrote $out"
