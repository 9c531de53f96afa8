#!/usr/bin/env bash
# Every GPU check in one pass (estimated 5-10 minutes on one H100; not yet timed on one):
#   1. the GPU tests (pytest -m gpu: CuPy against NumPy, layer by layer and step by step), the fused
#      kernels' first (if they fail, everything after runs with SCRATCHGAN_FUSED=off);
#   2. the benchmark against PyTorch on the same GPU, strict float32 and TF32 (docs/performance.md),
#      dcgan once more with im2col/col2im as the CPU's loops instead of the GPU's gathers, and both
#      workloads once more with the NumPy-style passes instead of the fused kernels (gpu_kernels.py);
#   3. a short run of each model family on the GPU, with its seconds per epoch and its final scores.
#
# usage: demos/gpu_checks.sh DATA_DIR [OUT_DIR]
#   DATA_DIR holds mnist/, emoji/ and (optional) fashion-mnist/, as scratchgan's data cache does;
#   OUT_DIR (default gpu_checks) receives checks.log, bench.jsonl and runs.json.
# Environment: PYTHON (default python3, which must have CuPy; PyTorch too for the comparison),
# EPOCHS (default 2: epochs of each training run; the first epoch includes CuPy's kernel compilation),
# DEVICE (default gpu; cpu rehearses the script on a machine without one, on a small DATA_DIR).
set -uo pipefail
data=${1:?usage: demos/gpu_checks.sh DATA_DIR [OUT_DIR]}
out=${2:-gpu_checks}
py=${PYTHON:-python3}
epochs=${EPOCHS:-2}
device=${DEVICE:-gpu}
runs=$(mktemp -d)
mkdir -p "$out"
log="$out/checks.log"
export PYTHONUNBUFFERED=1
: > "$log"

step() {   # step NAME COMMAND...: run it, its output appended to the log, its status and time in the log
    local name=$1 start
    shift
    echo "== $name: $*" | tee -a "$log"
    start=$(date +%s)
    "$@" >> "$log" 2>&1
    last_rc=$?
    echo "== $name: exit $last_rc after $(( $(date +%s) - start )) s" | tee -a "$log"
}

sg() { "$py" -m scratchgan.cli "$@"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >> "$log" 2>&1
"$py" -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" >> "$log" 2>&1

# the fused kernels first (gpu_kernels.py, never run on a GPU before): if one fails on the device, the
# rest of the checks run with SCRATCHGAN_FUSED=off, so the benchmarks and training runs still say something
step gpu-tests-fused "$py" -m pytest -m gpu -q -p no:cacheprovider tests/test_fused_kernels.py
if [ "$last_rc" != 0 ]; then
    export SCRATCHGAN_FUSED=off
    echo "== the fused kernels failed on this device: everything below runs with SCRATCHGAN_FUSED=off" | tee -a "$log"
fi
step gpu-tests "$py" -m pytest -m gpu -q -p no:cacheprovider tests --ignore tests/test_fused_kernels.py

quick=()   # a rehearsal on the CPU times a few steps only
[ "$device" = cpu ] && quick=(--steps 2 --warmup 1 --rounds 1)
for precision in strict tf32; do
    step "bench-$precision" sg bench --device "$device" --workload all --precision "$precision" \
        --compare-torch "$py" --rounds 3 --json "${quick[@]}"
    step "bench-$precision-1024" sg bench --device "$device" --workload dcgan --batch 1024 --precision "$precision" \
        --compare-torch "$py" --rounds 3 --json "${quick[@]}"
done
# im2col/col2im gather by index on the GPU (fastpath.uses_gather); the same step with the CPU's loops
step "bench-strict-loops" env SCRATCHGAN_IM2COL=loops "$py" -m scratchgan.cli bench --device "$device" \
    --workload dcgan --precision strict --compare-torch "$py" --rounds 2 --json "${quick[@]}"
# the optimizers' fused kernels on the GPU (gpu_kernels.uses_fused_kernels); the same step with their NumPy-style passes
step "bench-strict-unfused" env SCRATCHGAN_FUSED=off "$py" -m scratchgan.cli bench --device "$device" \
    --workload all --precision strict --compare-torch "$py" --rounds 2 --json "${quick[@]}"
grep -h '^{' "$log" > "$out/bench.jsonl"

train() {   # train NAME RECIPE [options...]: a short GPU run in a scratch folder
    local name=$1
    shift
    step "train-$name" sg train "$@" --device "$device" --epochs "$epochs" --out "$runs/$name" --quiet --no-report
}
train mlp mlp --data-dir "$data/mnist"
train dcgan dcgan --data-dir "$data/mnist"
train cgan cgan --data-dir "$data/mnist"
train cdcgan-plus cdcgan-plus --data-dir "$data/mnist"
train acgan-plus acgan-plus --data-dir "$data/mnist"
[ -d "$data/fashion-mnist" ] && train fashion-cdcgan-plus cdcgan-plus --dataset fashion-mnist --data-dir "$data"
train wgan-gp wgan-gp --data-dir "$data/mnist"
train srresnet srresnet --data-dir "$data/mnist"
train cyclegan cyclegan --data-dir "$data"
step sample sg sample "$runs/cdcgan-plus/checkpoint.npz" -n 8 --device "$device" -o "$runs/classes.png"

# seconds per epoch and final scores of every run
"$py" - "$runs" "$out/runs.json" <<'EOF' | tee -a "$log"
import json, pathlib, sys
runs, found = pathlib.Path(sys.argv[1]), {}
for summary in sorted(runs.glob("*/summary.json")):
    s = json.loads(summary.read_text())
    found[summary.parent.name] = {"device": s.get("device"), "epoch_seconds": s.get("epoch_seconds"),
                                  "final": s.get("final"), "evaluation": s.get("evaluation")}
    print(f"{summary.parent.name:22s} seconds per epoch: {s.get('epoch_seconds')}")
pathlib.Path(sys.argv[2]).write_text(json.dumps(found, indent=1))
EOF
echo "== done; runs kept in $runs" | tee -a "$log"
