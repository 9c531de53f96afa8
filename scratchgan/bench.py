"""``scratchgan bench``: time the benchmark's training step on the product code path.

The benchmark's two workloads and its step are described in docs/performance.md ("What is
measured"); "the SPEC" below is that specification.

One step is ``GANTrainer.train_step(real)``: sample noise, run G once, one D update on the
real batch plus that fake batch, one G update through D with the non-saturating loss
(fake batch reused), Adam for both, float32. The models are the ``mlp`` and ``dcgan``
recipes at image shape (1, 28, 28), which are the SPEC's two workloads; the real batch is
random data of the right shape and range (binarized {0, 1} pixels for mlp, [-1, 1] for dcgan).

Timing follows the SPEC: ``warmup`` untimed steps, then ``steps`` steps timed one by one
(median and min), the GPU synchronized before every clock read. The trainer copies its
metrics to the host every ``sync_every`` steps (every step on the CPU); a step that does so
carries that cost, and ``mean_ms`` (the whole timed block, ending with a final flush and
sync, divided by ``steps``) includes it amortized. Ratios against PyTorch come from
``--compare-torch PYTHON``, which runs the PyTorch reference of both workloads (shipped as
``scratchgan/bench_torch.py``; ``--torch-reference PATH`` picks another) in that interpreter,
interleaved with our own runs for several rounds (see docs/performance.md).

``precision`` says how float32 products are computed on the GPU, the same for both sides:
``strict`` (the default) in full float32 (CuPy's default; PyTorch with TF32 switched off for
cuBLAS and cuDNN), ``tf32`` on TF32 tensor cores (CuPy's float32 GEMMs with the TF32 compute
type; PyTorch with both TF32 switches on, cuDNN's own default for convolutions). Ampere and
newer GPUs only; on the CPU only ``strict`` exists.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import backend
from .fastpath import uses_gather
from .gpu_kernels import uses_fused_kernels

SPEC_BATCH = {"mlp": 200, "dcgan": 128}
SPEC_GFLOP = {"mlp": 1.9, "dcgan": 36.0}   # per step at the SPEC batch (docs/performance.md)
WORKLOADS = tuple(SPEC_BATCH)
SPEC_STEPS, SPEC_WARMUP = 20, 3
IMAGE_SHAPE = (1, 28, 28)
TORCH_DEVICE = {"cpu": "cpu", "gpu": "cuda"}
PRECISIONS = ("strict", "tf32")


class BenchError(RuntimeError):
    """The benchmark cannot run as asked (bad option, missing reference, failed PyTorch run)."""


# -- one workload ----------------------------------------------------------------------
def real_batch(workload, batch, xp=np, seed=0):
    """Random float32 data shaped and scaled like the workload's: (N, 784) in {0, 1} for
    mlp (binarized digits), (N, 1, 28, 28) uniform in [-1, 1] for dcgan."""
    rng = np.random.default_rng(seed)
    if workload == "mlp":
        data = (rng.random((batch, int(np.prod(IMAGE_SHAPE)))) > 0.5).astype(np.float32)
    else:
        data = (rng.random((batch, *IMAGE_SHAPE)) * 2 - 1).astype(np.float32)
    return xp.asarray(data)


def build_trainer(workload, device="cpu", batch=None, seed=0):
    """The workload's recipe (G, D, Adam optimizers, head) in a GANTrainer on ``device``."""
    from .gan.recipes import get_recipe
    from .gan.trainer import GANTrainer
    recipe = get_recipe(workload)
    options = recipe.options(batch_size=batch or SPEC_BATCH[workload], seed=seed)
    backend.manual_seed(seed)
    setup = recipe.setup(options, IMAGE_SHAPE)
    setup.G.to(device)
    setup.D.to(device)
    return GANTrainer.from_setup(setup, device)


def _check_options(workload, device, batch, steps, warmup):
    if workload not in WORKLOADS:
        raise BenchError(f"unknown workload {workload!r}; expected one of {WORKLOADS}")
    backend.check_device(device)
    for name, value, least in (("batch", batch, 1), ("steps", steps, 1), ("warmup", warmup, 0)):
        if not isinstance(value, (int, np.integer)) or value < least:
            raise BenchError(f"{name} must be an integer >= {least}, got {value!r}")


def run_benchmark(workload, device="cpu", batch=None, steps=SPEC_STEPS, warmup=SPEC_WARMUP, precision="strict",
                  cuda_graph=False):
    """Time ``steps`` training steps of ``workload`` after ``warmup`` untimed ones.

    Returns a dict: median_ms, min_ms and mean_ms per step, images_per_s and gflop_per_s
    (from the median step and the SPEC's FLOP count, scaled by batch), peak memory in MiB
    (resident set on the CPU, CuPy pool bytes on the GPU), and whether the run met the
    SPEC's conditions (its batch, >= 20 timed steps, >= 3 warm-up steps). ``cuda_graph``: the GPU step
    recorded as CUDA graphs and replayed (gan/cuda_graph.py; recorded in the last warm-up step); where it
    cannot be, the step runs as usual and ``cuda_graph_error`` says why.
    """
    batch = SPEC_BATCH.get(workload) if batch is None else batch
    _check_options(workload, device, batch, steps, warmup)
    check_precision(device, precision)
    if device == "gpu":
        set_gpu_precision(precision)
    xp = backend.xp_for(device)
    sync = _synchronizer(device)
    memory = _PeakMemory(device)
    trainer = build_trainer(workload, device, batch)
    real = real_batch(workload, batch, xp)
    if cuda_graph:
        from .gan.cuda_graph import GraphedOrAsUsual
        train_step = GraphedOrAsUsual(trainer, warmup=max(warmup - 1, 0))   # recorded in the last warm-up step
    else:
        train_step = trainer.train_step
    for _ in range(warmup):
        train_step(real)
    trainer.flush()
    sync()
    memory.reset()
    times = []
    block_start = time.perf_counter()
    for _ in range(steps):
        start = time.perf_counter()
        train_step(real)
        sync()
        times.append(time.perf_counter() - start)
    trainer.flush()   # metrics still pending on the device belong to the timed block
    sync()
    block = time.perf_counter() - block_start
    median = statistics.median(times)
    gflop = SPEC_GFLOP[workload] * batch / SPEC_BATCH[workload]
    return {
        "workload": workload, "device": device, "batch": batch, "steps": steps, "warmup": warmup,
        "median_ms": round(median * 1e3, 3), "min_ms": round(min(times) * 1e3, 3),
        "mean_ms": round(block / steps * 1e3, 3),
        "images_per_s": round(batch / median, 1),
        "gflop_per_step": round(gflop, 3), "gflop_per_s": round(gflop / median, 2),
        "peak_memory_mib": round(memory.peak_bytes() / 2**20, 1), "memory_kind": memory.kind,
        "spec_conditions": batch == SPEC_BATCH[workload] and steps >= SPEC_STEPS and warmup >= SPEC_WARMUP,
        "dtype": "float32", "precision": precision,
        "im2col": "gather" if uses_gather(xp) else "loops",   # fastpath.uses_gather: SCRATCHGAN_IM2COL
        "fused_kernels": uses_fused_kernels(xp),               # gpu_kernels.uses_fused_kernels: SCRATCHGAN_FUSED
        "cuda_graph": cuda_graph and train_step.error is None,  # replayed as CUDA graphs (gan/cuda_graph.py)
        **({"cuda_graph_error": train_step.error} if cuda_graph and train_step.error else {}),
        **({"graph_pool_mib": train_step.pool_mib()} if cuda_graph else {}),
    }


def check_cuda_graph(device, cuda_graph):
    if cuda_graph and device != "gpu":
        raise BenchError("--cuda-graph records the GPU step as CUDA graphs; use it with --device gpu")


def check_precision(device, precision):
    if precision not in PRECISIONS:
        raise BenchError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "tf32" and device != "gpu":
        raise BenchError("precision tf32 is a GPU mode (TF32 tensor cores); on the CPU use strict")


def set_gpu_precision(precision):
    """Make CuPy's float32 matrix products (all of our convolutions and dense layers) use full float32
    (``strict``) or TF32 tensor cores (``tf32``), for this process."""
    backend.cupy_module()
    from cupy._core import _routines_linalg as linalg
    linalg.set_compute_type(np.float32, gpu_compute_type(linalg, precision))


def gpu_compute_type(linalg, precision):
    """CuPy's compute type for ``precision`` (its COMPUTE_TYPE_DEFAULT = 1 and COMPUTE_TYPE_TF32 = 7)."""
    return getattr(linalg, "COMPUTE_TYPE_TF32", 7) if precision == "tf32" else getattr(linalg, "COMPUTE_TYPE_DEFAULT", 1)


def _synchronizer(device):
    """A function that waits for the device's queued work (a no-op on the CPU)."""
    if device == "cpu":
        return lambda: None
    cupy = backend.cupy_module()
    return lambda: cupy.cuda.Device().synchronize()


class _PeakMemory:
    """Peak resident set size (CPU) or CuPy memory-pool bytes (GPU) since ``reset``."""

    def __init__(self, device):
        self.device = device
        self.kind = "rss" if device == "cpu" else "gpu_pool"
        self._rss_reset = False

    def reset(self):
        if self.device == "gpu":
            backend.cupy_module().get_default_memory_pool().free_all_blocks()
            return
        try:  # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) of this process
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._rss_reset = True
        except OSError:
            self.kind = "rss_since_process_start"

    def peak_bytes(self):
        if self.device == "gpu":
            return backend.cupy_module().get_default_memory_pool().total_bytes()
        hwm = _proc_status_kib("VmHWM")
        if hwm is not None:
            return hwm * 1024
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _proc_status_kib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# -- the machine -------------------------------------------------------------------------
def machine_info(device="cpu"):
    """What the figures depend on: processor, cores, load, library versions, BLAS threads."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
            "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
            "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                           if k in os.environ}}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no dict form
        info["blas"] = "unknown"
    if device == "gpu":
        cupy = backend.cupy_module()
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        info["cupy"] = cupy.__version__
    return info


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -- PyTorch, interleaved ----------------------------------------------------------------
_TORCH_SNIPPET = """
import importlib.util, json, sys
path, name, device, steps, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
precision = sys.argv[6]
try:   # TF32 for cuBLAS and cuDNN on (tf32) or off (strict) before the reference builds anything
    import torch
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
except ImportError:   # the reference's own import will say so
    torch = None
spec = importlib.util.spec_from_file_location("torch_reference", path)
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)
make = getattr(ref, name)

def make_at_batch(dev):  # the reference's models and step, with real and noise batches of `batch` rows
    import torch
    G, D, real, noise, d_loss, adam = make(dev)
    noise_shape = noise().shape[1:]
    real = real[torch.arange(batch, device=real.device) % real.shape[0]]
    return G, D, real, (lambda: torch.randn(batch, *noise_shape, device=dev)), d_loss, adam

result = ref.bench(name, make if batch == 0 else make_at_batch, device, steps)
result["precision"] = precision
if torch is not None:
    result["tf32"] = {"cuda_matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
print(json.dumps(result))
"""


TORCH_REFERENCE = Path(__file__).resolve().with_name("bench_torch.py")


def find_torch_reference():
    """The PyTorch reference script shipped with the package (``scratchgan/bench_torch.py``)."""
    return TORCH_REFERENCE


def run_torch_reference(python, reference, workload, device="cpu", steps=SPEC_STEPS, batch=None, timeout=3600,
                        precision="strict"):
    """One run of ``reference``'s ``bench`` for ``workload`` in interpreter ``python``; its result dict.

    At a batch other than the SPEC's, the reference's own models, loss and step run on real
    and noise batches of that size (its real batch repeated, fresh noise). PyTorch's TF32
    switches are set from ``precision`` before the reference runs, and reported with its result.
    """
    check_precision(device, precision)
    other_batch = 0 if batch in (None, SPEC_BATCH[workload]) else batch
    cmd = [python, "-c", _TORCH_SNIPPET, str(reference), workload, TORCH_DEVICE[device], str(steps), str(other_batch),
           precision]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise BenchError(f"could not run the PyTorch reference with {python}: {err}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise BenchError(f"the PyTorch reference failed in {python} (exit {done.returncode}): " + " | ".join(tail))
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BenchError(f"the PyTorch reference printed no result: {done.stdout[-200:]!r}") from None


def compare_with_torch(workloads, device, python, reference, rounds=3, steps=SPEC_STEPS, warmup=SPEC_WARMUP,
                       report=None, batch=None, precision="strict", cuda_graph=False):
    """``rounds`` rounds of (ours, PyTorch) per workload, back to back; per-round and summary ratios
    (at ``batch``, default the SPEC's), both sides at ``precision``.

    The ratio is scratchgan's median step time over PyTorch's from the same round; the
    summary gives the median of the per-round ratios and the ratio of the best medians.
    ``report(kind, record)`` is called with each result as it arrives.
    """
    if rounds < 1:
        raise BenchError(f"rounds must be >= 1, got {rounds}")
    check_precision(device, precision)
    check_cuda_graph(device, cuda_graph)
    report = report or (lambda kind, record: None)
    runs = {w: [] for w in workloads}
    for round_index in range(1, rounds + 1):
        for workload in workloads:
            ours = run_benchmark(workload, device, batch or SPEC_BATCH[workload], steps, warmup, precision, cuda_graph)
            ours["round"] = round_index
            report("ours", ours)
            theirs = run_torch_reference(python, reference, workload, device, steps, batch, precision=precision)
            theirs["round"] = round_index
            report("torch", theirs)
            ratio = ours["median_ms"] / theirs["median_ms"]
            runs[workload].append((ours, theirs, ratio))
            report("ratio", {"workload": workload, "device": device, "batch": ours["batch"], "round": round_index,
                             "precision": precision, "ratio": round(ratio, 3)})
    summaries = []
    for workload, rows in runs.items():
        best_ours = min(o["median_ms"] for o, _, _ in rows)
        best_torch = min(t["median_ms"] for _, t, _ in rows)
        summary = {"workload": workload, "device": device, "batch": rows[0][0]["batch"], "rounds": rounds,
                   "precision": precision,
                   "ratio_median": round(statistics.median(r for _, _, r in rows), 3),
                   "ratio_best": round(best_ours / best_torch, 3),
                   "ours_median_ms": [o["median_ms"] for o, _, _ in rows],
                   "torch_median_ms": [t["median_ms"] for _, t, _ in rows]}
        summaries.append(summary)
        report("summary", summary)
    return summaries


# -- command line ------------------------------------------------------------------------
def add_commands(subparsers):
    """Register ``bench`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "bench", help="time the SPEC's GAN training step (mlp, dcgan); optionally against PyTorch",
        description="Time one training step of the SPEC's workloads (docs/performance.md): median and min "
                    "over --steps steps after --warmup steps, GPU synchronized; images/s, GFLOP/s and peak "
                    "memory. --compare-torch PYTHON interleaves runs of the PyTorch reference of both workloads "
                    "(shipped as scratchgan/bench_torch.py) in that interpreter and prints scratchgan/PyTorch "
                    "ratios.")
    p.add_argument("--workload", default="all", choices=(*WORKLOADS, "all"))
    p.add_argument("--device", default="cpu", choices=backend.DEVICES)
    p.add_argument("--batch", type=int, help="batch size (default: the SPEC's, mlp 200, dcgan 128); "
                                             "with --compare-torch PyTorch runs at it too")
    p.add_argument("--steps", type=int, default=SPEC_STEPS, help=f"timed steps (default {SPEC_STEPS})")
    p.add_argument("--warmup", type=int, default=SPEC_WARMUP, help=f"untimed steps first (default {SPEC_WARMUP})")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--compare-torch", metavar="PYTHON",
                   help="a Python interpreter with PyTorch: run the PyTorch reference in it, interleaved")
    p.add_argument("--torch-reference", metavar="PATH",
                   help="another PyTorch reference script (default: the shipped scratchgan/bench_torch.py)")
    p.add_argument("--precision", choices=PRECISIONS, default="strict",
                   help="GPU float32 products: strict (full float32, the default; PyTorch with TF32 off) or tf32 "
                        "(TF32 tensor cores for both: CuPy's TF32 compute type, PyTorch's TF32 switches on)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of (ours, PyTorch) with --compare-torch (default 3)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="GPU: record the step as CUDA graphs and replay them (gan/cuda_graph.py); where the step "
                        "cannot be recorded it runs as usual and the result says why")
    p.set_defaults(func=cmd_bench)
    return p


def cmd_bench(args):
    workloads = WORKLOADS if args.workload == "all" else (args.workload,)
    emit = _printer(args.json)
    try:
        check_cuda_graph(args.device, args.cuda_graph)
        if args.device == "gpu":
            backend.cupy_module()
        emit("machine", machine_info(args.device))
        if args.compare_torch:
            reference = _torch_reference_path(args)
            compare_with_torch(workloads, args.device, args.compare_torch, reference, args.rounds,
                               args.steps, args.warmup, report=emit, batch=args.batch, precision=args.precision,
                               cuda_graph=args.cuda_graph)
        else:
            for workload in workloads:
                emit("ours", run_benchmark(workload, args.device, args.batch, args.steps, args.warmup, args.precision,
                                           args.cuda_graph))
        emit("machine", {"load_average_after": machine_info(args.device)["load_average"]})
    except (BenchError, backend.DeviceError, ValueError) as err:
        print(f"scratchgan bench: {err}", file=sys.stderr)
        return 2
    return 0


def _torch_reference_path(args):
    if args.batch is not None and args.batch < 1:
        raise BenchError(f"batch must be an integer >= 1, got {args.batch}")
    reference = Path(args.torch_reference) if args.torch_reference else find_torch_reference()
    if reference is None or not reference.is_file():
        raise BenchError(f"torch_reference.py not found ({args.torch_reference or reference}); "
                         "pass --torch-reference PATH")
    return reference


def _printer(as_json):
    def emit(kind, record):
        if as_json:
            print(json.dumps({"kind": kind, **record}), flush=True)
        else:
            print(_format(kind, record), flush=True)
    return emit


def _format(kind, r):
    if kind == "machine":
        return "# " + ", ".join(f"{k}={v}" for k, v in r.items())
    if kind == "ratio":
        return (f"round {r['round']}: {r['workload']} batch {r['batch']} {r['precision']} "
                f"scratchgan/pytorch = {r['ratio']:.2f}")
    if kind == "summary":
        return (f"{r['workload']:6s} {r['device']:4s} batch={r['batch']:4d} {r['precision']} "
                f"ratio (median of {r['rounds']} rounds) = "
                f"{r['ratio_median']:.2f}, "
                f"best/best = {r['ratio_best']:.2f}")
    if kind == "torch":
        return (f"{r['workload']:6s} {r['device']:4s} batch={r['batch']:4d} median_ms={r['median_ms']:.2f} "
                f"min_ms={r['min_ms']:.2f}  [pytorch]")
    spec = "" if r["spec_conditions"] else "  (not the SPEC's conditions)"
    gpu_path = (f" im2col={r['im2col']} fused_kernels={'on' if r['fused_kernels'] else 'off'}"
                f" cuda_graph={'on' if r.get('cuda_graph') else 'off'}"
                + (f" (not recorded: {r['cuda_graph_error']})" if r.get("cuda_graph_error") else "")
                if r["device"] == "gpu" else "")      # the GPU's switches (docs/performance.md)
    return (f"{r['workload']:6s} {r['device']:4s} batch={r['batch']:4d} median_ms={r['median_ms']:.2f} "
            f"min_ms={r['min_ms']:.2f} mean_ms={r['mean_ms']:.2f} images/s={r['images_per_s']:.0f} "
            f"GFLOP/s={r['gflop_per_s']:.1f} peak_{r['memory_kind']}={r['peak_memory_mib']:.0f}MiB{gpu_path}{spec}")


def main(argv=None):
    """``python -m scratchgan.bench [options]``: the ``bench`` command on its own."""
    parser = argparse.ArgumentParser(prog="scratchgan")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
