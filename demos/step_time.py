"""CPU time of one training step of a recipe, for comparing two versions of the code.

    python demos/step_time.py srresnet srgan cyclegan dcgan --steps 5

For each recipe: its default options, random data of its shape (a fixed batch), 2 untimed steps,
then the median over ``--steps`` steps of ``time.thread_time()`` around ``train_step``. CPU time
of the calling thread moves much less with other tenants' load than wall time does; run it with
``OPENBLAS_NUM_THREADS=1`` so the whole step is that thread's. To compare two trees, run each with
``PYTHONPATH=TREE`` in alternation (docs/performance.md, "The round of 2026-11-28").
``mlp`` and ``dcgan`` are the benchmark's steps (``scratchgan bench`` times them against PyTorch).
"""
import argparse
import time

import numpy as np

RECIPES = ("mlp", "dcgan", "srresnet", "srgan", "cyclegan")


def super_resolution_trainer(name):
    from scratchgan import backend
    from scratchgan.gan.recipes import get_recipe
    from scratchgan.gan.srgan import SuperResolutionTrainer, downscale
    recipe = get_recipe(name)
    options = recipe.options()
    backend.manual_seed(0)
    s = recipe.setup(options, (1, 28, 28))
    trainer = SuperResolutionTrainer(s.G, s.opt_g, s.content, s.D, s.opt_d, s.adversarial_weight)
    high = np.random.default_rng(0).uniform(-1, 1, (options["batch_size"], 1, 28, 28)).astype(np.float32)
    return trainer, (downscale(high), high)


def cyclegan_trainer():
    from scratchgan import backend
    from scratchgan.gan.cyclegan import CycleGANTrainer
    from scratchgan.gan.recipes import get_recipe
    recipe = get_recipe("cyclegan")
    options = recipe.options()
    backend.manual_seed(0)
    s = recipe.setup(options, (3, 32, 32))
    trainer = CycleGANTrainer(s.G, s.F, s.D_A, s.D_B, *s.optimizers.values(),
                              lambda_cycle=options["lambda_cycle"], lambda_identity=options["lambda_identity"])
    rng = np.random.default_rng(0)
    a, b = (rng.uniform(-1, 1, (options["batch_size"], 3, 32, 32)).astype(np.float32) for _ in range(2))
    return trainer, (a, b)


def benchmark_trainer(name):
    from scratchgan import bench
    return bench.build_trainer(name), bench.real_batch(name, bench.SPEC_BATCH[name])


def trainer_and_batch(name):
    if name in ("srresnet", "srgan"):
        return super_resolution_trainer(name)
    if name == "cyclegan":
        return cyclegan_trainer()
    return benchmark_trainer(name)


def step_cpu_ms(name, steps):
    """Median CPU milliseconds (this thread) of ``steps`` training steps of recipe ``name``."""
    trainer, batch = trainer_and_batch(name)
    for _ in range(2):
        trainer.train_step(batch)
    times = []
    for _ in range(steps):
        start = time.thread_time()
        trainer.train_step(batch)
        times.append(time.thread_time() - start)
    return 1000 * float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+", choices=RECIPES)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per recipe (default 5)")
    args = parser.parse_args(argv)
    import scratchgan
    for name in args.recipes:
        print(f"{name}: {step_cpu_ms(name, args.steps):.1f} ms CPU per step "
              f"(median of {args.steps}; scratchgan from {scratchgan.__file__})", flush=True)


if __name__ == "__main__":
    main()
