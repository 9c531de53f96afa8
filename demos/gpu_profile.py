"""Where the GPU step's time goes: host time against device time per training step, with the fused
kernels and without, replayed as CUDA graphs, and the Python functions the host spends it in.

    python demos/gpu_profile.py [--repeat 30] [--top 25]

For each of the benchmark's steps (``mlp`` batch 200, ``dcgan`` batch 128 and 1024), with
``SCRATCHGAN_FUSED`` auto and off, and replayed as CUDA graphs (gan/cuda_graph.py):
``cupyx.profiler.benchmark`` of the step on the trainer that ``scratchgan bench`` builds, printing the
median host (CPU) and device (GPU) milliseconds.
Host time close to device time means the GPU waits for Python to issue its kernels
(docs/performance.md, "On the GPU"). Then ``cProfile`` of 20 ``dcgan`` steps with the fused
kernels: the functions with the most host time of their own. Needs CuPy and a CUDA device.
"""
import argparse
import cProfile
import os
import pstats
import statistics
import traceback

CASES = (("mlp", 200), ("dcgan", 128), ("dcgan", 1024))


def host_and_device_ms(workload, batch, repeat, graph=False):
    from cupyx.profiler import benchmark

    from scratchgan import backend, bench
    from scratchgan.gan.cuda_graph import CudaGraphStep
    trainer = bench.build_trainer(workload, "gpu", batch)
    real = bench.real_batch(workload, batch, backend.xp_for("gpu"))
    train_step = CudaGraphStep(trainer) if graph else trainer.train_step   # recorded in the third warm-up step

    def step(batch):                                          # a function: benchmark reports it by name
        return train_step(batch)
    result = benchmark(step, (real,), n_repeat=repeat, n_warmup=5)
    return statistics.median(result.cpu_times) * 1e3, statistics.median(result.gpu_times[0]) * 1e3


def profile_host(workload, batch, steps, top):
    from scratchgan import backend, bench
    trainer = bench.build_trainer(workload, "gpu", batch)
    real = bench.real_batch(workload, batch, backend.xp_for("gpu"))
    for _ in range(5):
        trainer.train_step(real)
    backend.cupy_module().cuda.Device().synchronize()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        trainer.train_step(real)
    backend.cupy_module().cuda.Device().synchronize()
    profiler.disable()
    print(f"\n{workload} batch {batch}, {steps} steps, fused kernels {os.environ.get('SCRATCHGAN_FUSED', 'auto')}:"
          f" the {top} functions with the most host time of their own")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=30, help="timed steps per case (default 30)")
    p.add_argument("--top", type=int, default=25, help="functions listed from the host profile (default 25)")
    args = p.parse_args(argv)
    from scratchgan import bench
    bench.set_gpu_precision("strict")
    print(f"{'workload':8s} {'batch':>5s} {'fused':>5s} {'graph':>5s} {'host ms':>8s} {'device ms':>9s}")
    for fused, graph in (("auto", True), ("auto", False), ("off", False)):
        os.environ["SCRATCHGAN_FUSED"] = fused
        for workload, batch in CASES:
            try:
                host, device = host_and_device_ms(workload, batch, args.repeat, graph)
            except Exception as error:     # noqa: BLE001 - a case that fails on this device is reported, not fatal
                print(f"{workload:8s} {batch:5d} {fused:>5s} {graph!s:>5s} failed: {error}", flush=True)
                traceback.print_exc()      # with its cause: where in the step recording failed
                continue
            print(f"{workload:8s} {batch:5d} {fused:>5s} {graph!s:>5s} {host:8.2f} {device:9.2f}", flush=True)
    os.environ["SCRATCHGAN_FUSED"] = "auto"
    profile_host("dcgan", 128, 20, args.top)


if __name__ == "__main__":
    main()
