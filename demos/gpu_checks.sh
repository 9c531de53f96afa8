#!/usr/bin/env bash
# Every GPU check in one pass, the most wanted first, within a time budget (a lease is short):
#   1. the fused kernels' GPU tests (gpu_kernels.py; if one fails, everything after runs with
#      SCRATCHGAN_FUSED=off), then the CUDA graphs' (gan/cuda_graph.py, gan/cublas_capture.py);
#   2. the benchmark against PyTorch on the same GPU, strict float32 and TF32, both workloads and dcgan at
#      batch 1024, with the step replayed as CUDA graphs (--cuda-graph), then issued from Python as usual
#      (docs/performance.md);
#   3. where the host time goes (demos/gpu_profile.py);
#   4. the other GPU tests (pytest -m gpu: CuPy against NumPy, layer by layer and step by step);
#   5. short runs of the model families on the GPU (dcgan and cgan with --cuda-graph too), with seconds per epoch
#      and final scores;
#   6. both workloads with the NumPy-style passes instead of the fused kernels, and dcgan with
#      im2col/col2im as the CPU's loops instead of the GPU's gathers.
# A step that would start after the budget is skipped, and each one is stopped at it, so the summaries
# are still written.
#
# usage: demos/gpu_checks.sh DATA_DIR [OUT_DIR]
#   DATA_DIR holds mnist/, emoji/ and (optional) fashion-mnist/, as scratchgan's data cache does;
#   OUT_DIR (default gpu_checks) receives checks.log, bench.jsonl, profile.txt, runs.json and runs.tgz
#   (each run's figures and summary).
# Environment: PYTHON (default python3, which must have CuPy; PyTorch too for the comparison),
# EPOCHS (default 2: epochs of dcgan's run; the other families run one, which includes CuPy's kernel
# compilation), BUDGET (default 540: seconds after which no step starts or runs on),
# DEVICE (default gpu; cpu rehearses the script on a machine without one, on a small DATA_DIR).
set -uo pipefail
data=${1:?usage: demos/gpu_checks.sh DATA_DIR [OUT_DIR]}
out=${2:-gpu_checks}
py=${PYTHON:-python3}
epochs=${EPOCHS:-2}
device=${DEVICE:-gpu}
deadline=$(( $(date +%s) + ${BUDGET:-540} ))
runs=$(mktemp -d)
mkdir -p "$out"
log="$out/checks.log"
export PYTHONUNBUFFERED=1
: > "$log"

step() {   # step NAME COMMAND...: run it (stopped at the deadline), its output, status and time in the log
    local name=$1 start left
    shift
    start=$(date +%s)
    left=$(( deadline - start ))
    if [ "$left" -lt 10 ]; then
        echo "== $name: skipped, the budget is spent" | tee -a "$log"
        last_rc=skipped
        return
    fi
    echo "== $name: $*" | tee -a "$log"
    timeout "$left" "$@" >> "$log" 2>&1
    last_rc=$?
    echo "== $name: exit $last_rc after $(( $(date +%s) - start )) s" | tee -a "$log"
}

sg=("$py" -m scratchgan.cli)   # a command, not a function: step runs it under timeout

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >> "$log" 2>&1
"$py" -c "import cupy, numpy, torch; print('cupy', cupy.__version__, 'numpy', numpy.__version__, 'torch', torch.__version__)" >> "$log" 2>&1

# the fused kernels first (gpu_kernels.py): if one fails on the device, the rest of the checks run with
# SCRATCHGAN_FUSED=off, so the benchmarks and training runs still say something
step gpu-tests-fused "$py" -m pytest -m gpu -q -p no:cacheprovider tests/test_fused_kernels.py
if [ "$last_rc" != 0 ]; then
    export SCRATCHGAN_FUSED=off
    echo "== the fused kernels failed on this device: everything below runs with SCRATCHGAN_FUSED=off" | tee -a "$log"
fi

step gpu-tests-cuda-graph "$py" -m pytest -m gpu -q -p no:cacheprovider tests/test_cublas_capture.py tests/test_cuda_graph.py

quick=() graph=(--cuda-graph)   # a rehearsal on the CPU times a few steps only, without CUDA graphs
[ "$device" = cpu ] && quick=(--steps 2 --warmup 1 --rounds 1) graph=()
bench() {   # bench NAME [env VAR=VALUE...] -- BENCH OPTIONS...
    local name=$1 envs=()
    shift
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    step "$name" env "${envs[@]}" "${sg[@]}" bench --device "$device" --compare-torch "$py" --json \
        "$@" "${quick[@]}"
    grep -h '^{' "$log" > "$out/bench.jsonl"
}
# the step replayed as CUDA graphs (gan/cuda_graph.py; where it cannot be recorded, the record says why)
bench bench-strict-graph -- --workload all --precision strict --rounds 3 "${graph[@]}"
bench bench-tf32-graph -- --workload all --precision tf32 --rounds 3 "${graph[@]}"
for precision in strict tf32; do
    bench "bench-$precision-1024-graph" -- --workload dcgan --batch 1024 --precision "$precision" --rounds 2 "${graph[@]}"
done
# the same steps issued from Python, as without --cuda-graph
bench bench-strict -- --workload all --precision strict --rounds 2
[ "$device" = gpu ] && step profile env PYTHONPATH="$PWD" sh -c "'$py' demos/gpu_profile.py > '$out/profile.txt' 2>&1; rc=\$?; tail -n 12 '$out/profile.txt'; exit \$rc"
bench bench-tf32 -- --workload all --precision tf32 --rounds 2
for precision in strict tf32; do
    bench "bench-$precision-1024" -- --workload dcgan --batch 1024 --precision "$precision" --rounds 1
done

step gpu-tests "$py" -m pytest -m gpu -q -p no:cacheprovider tests --ignore tests/test_fused_kernels.py \
    --ignore tests/test_cuda_graph.py --ignore tests/test_cublas_capture.py

train() {   # train NAME EPOCHS RECIPE [options...]: a short GPU run in a scratch folder
    local name=$1 n=$2
    shift 2
    step "train-$name" "${sg[@]}" train "$@" --device "$device" --epochs "$n" --out "$runs/$name" --quiet --no-report
}
train dcgan "$epochs" dcgan --data-dir "$data/mnist"
[ "$device" = gpu ] && train dcgan-graph "$epochs" dcgan --data-dir "$data/mnist" --cuda-graph
[ "$device" = gpu ] && train cgan-graph 1 cgan --data-dir "$data/mnist" --cuda-graph   # dropout masks between graphs
train srresnet 1 srresnet --data-dir "$data/mnist"
train cyclegan 1 cyclegan --data-dir "$data"
train mlp 1 mlp --data-dir "$data/mnist"
train wgan-gp 1 wgan-gp --data-dir "$data/mnist"
train cdcgan-plus 1 cdcgan-plus --data-dir "$data/mnist"
step sample "${sg[@]}" sample "$runs/cdcgan-plus/checkpoint.npz" -n 8 --device "$device" -o "$runs/classes.png"
train acgan-plus 1 acgan-plus --data-dir "$data/mnist"
train cgan 1 cgan --data-dir "$data/mnist"
[ -d "$data/fashion-mnist" ] && train fashion-cdcgan-plus 1 cdcgan-plus --dataset fashion-mnist --data-dir "$data"

# the same step with the fused kernels' NumPy-style passes (gpu_kernels.uses_fused_kernels)
bench bench-strict-unfused SCRATCHGAN_FUSED=off -- --workload all --precision strict --rounds 2
# im2col/col2im gather by index on the GPU (fastpath.uses_gather); the same step with the CPU's loops
bench bench-strict-loops SCRATCHGAN_IM2COL=loops -- --workload dcgan --precision strict --rounds 2

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
tar czf "$out/runs.tgz" -C "$runs" --exclude '*.npz' --exclude '*.gif' . 2>> "$log"   # figures and summaries
echo "== done; runs kept in $runs" | tee -a "$log"
