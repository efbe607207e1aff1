#!/usr/bin/env bash
# The GPU measurements of benchmarks/RESULTS.md ("GPU"), one after the other, each bounded in time, so
# that one slow or failing step leaves the others' results.  Run from the repository root on a CUDA
# machine (byzlab importable: installed, or the root on PYTHONPATH):
#
#     bash benchmarks/gpu_check.sh [OUT_DIR]        # default benchmarks/measured/gpu-<date>
#
# OUT_DIR/gpu.log holds every step's output; OUT_DIR/gpu.tar.gz the log and every table written
# so far (rebuilt after each step).  Limits in seconds: GPU_SCALE=2 doubles them; GPU_STEPS="tests bench"
# runs only the steps named.
set -u
out=${1:-benchmarks/measured/gpu-$(date +%F)}
work=$(mktemp -d)
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
scale=${GPU_SCALE:-1}
log="$work/gpu.log"

step() {  # step LIMIT NAME COMMAND...
    local limit=$(( $1 * scale )) name=$2 t0=$SECONDS rc
    shift 2
    if [ -n "${GPU_STEPS:-}" ] && [[ " $GPU_STEPS " != *" $name "* ]]; then return; fi
    echo "== $name (limit ${limit} s): $*" | tee -a "$log"
    timeout -k 5 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$log"
    cp "$log" "$out/gpu.log"
    tar -czf "$out/gpu.tar.gz" -C "$work" .
}

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    $py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
    lscpu | grep -E 'Model name|^CPU\(s\)'
} >>"$log" 2>&1
# the CUDA-only tests: no host synchronisation inside a round, every rule and engine, the batched round,
# and one seed's draws the same on both devices
step 90 tests "$py" -m pytest -q -p no:cacheprovider -o addopts= tests/test_simulator.py -k "synchronises or devices"
step 90 agreement "$py" benchmarks/cuda_agreement.py --rounds 50
step 200 bench "$py" benchmarks/bench.py --device cuda --models cnn,resnet20 --runs 4,16,32 \
    --warmup 3 --rounds 20 --out "$work/bench-cuda"
step 50 bench-resnet9 "$py" benchmarks/bench.py --device cuda --models resnet9 --runs 4,16 --rule-rounds 0 \
    --out "$work/bench-cuda-resnet9"
step 70 bf16 "$py" benchmarks/bench.py --device cuda --models resnet20 --runs 16,32,64 --precision bf16 \
    --rule-rounds 0 --rounds 20 --out "$work/bench-cuda-resnet20-bf16"
step 70 tf32 "$py" benchmarks/bench.py --device cuda --models resnet20 --runs 16,32,64 --precision tf32 \
    --rule-rounds 0 --rounds 20 --out "$work/bench-cuda-resnet20-tf32"
step 70 precision "$py" benchmarks/precision_check.py --device cuda --precisions bf16,tf32 --epochs 50
# the three models in one table (the sweep projection with resnet9 timed; TM's sort inside whole
# resnet9 rounds; Fang's and DnC's draws, made on the CPU, inside the cnn's rule table)
step 300 bench-all "$py" benchmarks/bench.py --device cuda --models cnn,resnet20,resnet9 --runs 4,16 \
    --warmup 3 --rounds 20 --out "$work/bench-cuda-all"
# the torch.compile alternatives of the rank networks on the GPU, and bf16 beyond resnet20
step 120 compile "$py" benchmarks/bench.py --device cuda --models cnn --runs 16 --rule-rounds 0 --compile \
    --warmup 3 --rounds 20 --out "$work/bench-cuda-cnn-compile"
step 120 bf16-more "$py" benchmarks/bench.py --device cuda --models cnn,resnet9 --runs 16,32 --precision bf16 \
    --rule-rounds 0 --rounds 20 --out "$work/bench-cuda-bf16-cnn-resnet9"
echo "== done" | tee -a "$log"
cp "$log" "$out/gpu.log"
