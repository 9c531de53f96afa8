"""gan/cuda_graph.py: the training step recorded as CUDA graphs and replayed.

Without a GPU, a stand-in CuPy whose stream "records" while the NumPy step runs as usual (so the
recorded step trains, as on the GPU) and whose graphs count their launches checks the bookkeeping
around the graphs: what runs between them, what is restored after recording, what each replay
refreshes and keeps. On a GPU, the real graphs must train exactly as the eager step does.
"""
import ast
import contextlib
import pathlib
import types

import numpy as np
import pytest

from scratchgan import backend, bench, fastpath
from scratchgan.gan import cuda_graph
from scratchgan.gan.cuda_graph import CudaGraphError, CudaGraphStep, unsupported
from scratchgan.gan.recipes import get_recipe
from scratchgan.gan.trainer import GANTrainer


class FakeGraph:
    def __init__(self, log):
        self.log = log

    def launch(self, stream=None):
        self.log.append("launch")


class FakeStream:
    def __init__(self, log, non_blocking=False):
        self.log, self.capturing = log, False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def begin_capture(self):
        assert not self.capturing
        self.capturing = True
        self.log.append("begin")

    def end_capture(self):
        assert self.capturing
        self.capturing = False
        self.log.append("end")
        return FakeGraph(self.log)

    def is_capturing(self):
        return self.capturing

    def record(self):
        return object()

    def wait_event(self, event):
        pass


class FakeCupy:
    """What CudaGraphStep uses of CuPy: streams, graphs, a memory pool, using_allocator."""

    def __init__(self):
        self.log, self.allocators = [], []
        log, allocators = self.log, self.allocators

        class Stream(FakeStream):
            def __init__(self, non_blocking=False):
                super().__init__(log, non_blocking)
        Stream.null = Stream()

        class MemoryPool:
            def malloc(self, size):
                raise AssertionError("not called by the stand-in")

        @contextlib.contextmanager
        def using_allocator(malloc):
            allocators.append(malloc)
            yield
            allocators.pop()

        self.cuda = type("cuda", (), {"Stream": Stream, "MemoryPool": MemoryPool,
                                      "using_allocator": staticmethod(using_allocator),
                                      "get_current_stream": staticmethod(lambda: Stream.null)})


class FakeMatmul:
    """CapturedMatmul's stand-in: NumPy's product, only while the stand-in stream records."""

    def __init__(self, log):
        self.log, self.calls = log, 0

    def __call__(self, a, b, out=None):
        assert self.log and self.log[-1] == "begin", "a product through cuBLAS directly outside a recording"
        self.calls += 1
        return np.matmul(a, b, out=out)


def make_trainer(workload="dcgan", batch=4, device="cpu", **options):
    recipe = get_recipe(workload)
    backend.manual_seed(0)
    setup = recipe.setup(recipe.options(batch_size=batch, seed=0, **options), bench.IMAGE_SHAPE)
    setup.G.to(device)
    setup.D.to(device)
    trainer = GANTrainer.from_setup(setup, device)
    trainer.sync_every = 25                    # the GPU's default
    return trainer


def no_host_data_while_recording(monkeypatch, log):
    """np.asarray and np.array refuse Python numbers and sequences while the stand-in stream records:
    on the GPU turning them into an array is a host-to-device copy, which CuPy refuses during stream
    capture. (NumPy scalars pass: NumPy's reductions return them where CuPy's return device arrays.)"""
    def guarded(convert):
        def convert_array(obj, *args, **kwargs):
            if log and log[-1] == "begin" and isinstance(obj, (bool, int, float, complex, list, tuple)):
                raise RuntimeError(f"host-to-device copy of {obj!r} while recording")
            return convert(obj, *args, **kwargs)
        return convert_array
    monkeypatch.setattr(np, "asarray", guarded(np.asarray))
    monkeypatch.setattr(np, "array", guarded(np.array))


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CPU trainer taken for a GPU one, and the stand-in CuPy (host data refused while recording)."""
    fake = FakeCupy()
    monkeypatch.setattr(cuda_graph.backend, "cupy_module", lambda: fake)
    fake.matmul = FakeMatmul(fake.log)
    monkeypatch.setattr(cuda_graph, "CapturedMatmul", types.SimpleNamespace(for_cupy=lambda cupy: fake.matmul))
    no_host_data_while_recording(monkeypatch, fake.log)

    def gpu_trainer(*args, **kw):
        trainer = make_trainer(*args, **kw)
        trainer.device = "gpu"
        return trainer
    return fake, gpu_trainer


def test_unsupported_steps_are_named():
    trainer = make_trainer()
    assert "GPU" in unsupported(trainer)
    with pytest.raises(CudaGraphError, match="GPU"):
        CudaGraphStep(trainer)
    trainer.device = "gpu"
    assert unsupported(trainer) is None


def test_unsupported_trainers_with_the_gpus_switches(fake_gpu):
    _, gpu_trainer = fake_gpu
    assert unsupported(gpu_trainer()) is None
    assert "k = 2" in unsupported(gpu_trainer(k=2))
    assert unsupported(gpu_trainer("dcgan-plus")) is None                  # its weight average: a hook
    penalised = gpu_trainer()
    penalised.extensions = [type("R1Penalty", (), {"d_penalty": lambda self, trainer, batch: 0.0})()]
    assert "penalties" in unsupported(penalised) and "R1Penalty" in unsupported(penalised)
    assert unsupported(gpu_trainer("cdcgan")) is None and unsupported(gpu_trainer("acgan")) is None


def test_warmup_runs_the_step_then_one_step_is_recorded_and_trains(fake_gpu):
    fake, gpu_trainer = fake_gpu
    trainer = gpu_trainer()
    graphed = CudaGraphStep(trainer, warmup=2)
    batch = bench.real_batch("dcgan", 4)
    graphed(batch)
    graphed(batch)
    assert fake.log == [] and trainer.d_steps == 2 and fake.matmul.calls == 0
    originals = trainer.rng, backend.global_rng(), trainer.opt_d.t
    graphed(batch)
    # three segments around the two optimizer steps, each launched once as soon as it is recorded
    assert fake.log == ["begin", "end", "launch"] * 3 and fake.allocators == []
    # the layers' products went to cuBLAS directly while recording (FakeMatmul checks when), and only then
    recorded_products = fake.matmul.calls
    assert recorded_products > 0 and fastpath.capture_matmul is None
    (recorded,) = graphed.recorded.values()
    # graphs, then host work between them: an optimizer step and the step counter the trainer advances
    assert [hasattr(s, "launch") for s in recorded.segments] == [True, False, False, True, False, False, True]
    assert trainer.opt_d.t == originals[2] + 1 and trainer.d_steps == trainer.g_steps == 3
    # everything swapped in for the recording is back
    assert "step" not in vars(trainer.opt_d) and "step" not in vars(trainer.opt_g)
    assert "sample_noise" not in vars(trainer) and trainer.sync_every == 25
    assert (trainer.rng, backend.global_rng()) == originals[:2]
    # the recorded step's metrics were copied: the next replay rewrites the recorded array
    metrics, g_turn = trainer._pending[-1]
    assert g_turn and metrics is not recorded.metrics and not np.shares_memory(metrics, recorded.metrics)
    graphed(batch)                                 # a replay makes no products of its own
    assert fake.matmul.calls == recorded_products


FLAT_RECIPES = ("mlp", "goodfellow2014", "mlp-improved", "cgan")       # (N, 784) digits
CONDITIONAL_RECIPES = ("cdcgan", "acgan", "cgan")


def batch_for(recipe, n=4, seed=0):
    """A batch of the recipe's shape: images, and labels too for a conditional model."""
    images = bench.real_batch("mlp" if recipe in FLAT_RECIPES else "dcgan", n, seed=seed)
    if recipe in CONDITIONAL_RECIPES:
        return images, np.random.default_rng(seed).integers(0, 10, n)
    return images


@pytest.mark.parametrize("recipe", ["dcgan", "mlp", "cdcgan", "acgan", "goodfellow2014", "mlp-improved", "cgan"])
def test_the_steps_copy_nothing_from_the_host_while_recording(fake_gpu, recipe):
    """The recipes record; the last three draw dropout masks, each a boundary between graphs."""
    from scratchgan.gan.cuda_graph import _Redraw
    fake, gpu_trainer = fake_gpu
    graphed = CudaGraphStep(gpu_trainer(recipe), warmup=0)
    graphed(batch_for(recipe))
    (recorded,) = graphed.recorded.values()
    draws = sum(isinstance(s, _Redraw) for s in recorded.segments)
    assert (draws > 0) == (recipe in ("goodfellow2014", "mlp-improved", "cgan"))
    assert fake.log == ["begin", "end", "launch"] * (3 + draws)


@pytest.mark.parametrize("recipe", ["cdcgan", "acgan"])
def test_a_conditional_replay_copies_the_labels_in_and_draws_new_fake_labels(fake_gpu, recipe):
    fake, gpu_trainer = fake_gpu
    trainer = gpu_trainer(recipe, batch=32)
    graphed = CudaGraphStep(trainer, warmup=0)
    graphed(batch_for(recipe, 32))
    (recorded,) = graphed.recorded.values()
    fake_labels = []
    for seed in (1, 2):
        images, labels = batch_for(recipe, 32, seed)
        graphed((images, labels))
        np.testing.assert_array_equal(recorded.real[1], labels)
        np.testing.assert_array_equal(recorded.real[0], images)
        fake_labels.append(recorded.fake_labels.copy())
    assert not np.array_equal(*fake_labels) and set(np.unique(fake_labels)) <= set(range(10))
    assert "sample_labels" not in vars(trainer) and trainer.d_steps == 3


def test_each_replay_refreshes_its_inputs_runs_the_optimizers_and_keeps_its_metrics(fake_gpu):
    fake, gpu_trainer = fake_gpu
    trainer = gpu_trainer()
    graphed = CudaGraphStep(trainer, warmup=0)
    graphed(bench.real_batch("dcgan", 4))
    (recorded,) = graphed.recorded.values()
    fake.log.clear()
    noises = []
    for seed in range(3):
        batch = bench.real_batch("dcgan", 4, seed=seed + 1)
        t = trainer.opt_d.t, trainer.opt_g.t
        graphed(batch)
        np.testing.assert_array_equal(recorded.real[0], batch)
        noises.append(recorded.noise.copy())
        assert (trainer.opt_d.t, trainer.opt_g.t) == (t[0] + 1, t[1] + 1)
    assert fake.log == ["launch"] * 9                      # replays record nothing
    assert trainer.d_steps == trainer.g_steps == 4
    assert not np.array_equal(noises[0], noises[1])        # a fresh draw every step
    pending = [m for m, _ in trainer._pending]
    assert len(pending) == 4 and len({id(m) for m in pending}) == 4
    assert not any(np.shares_memory(a, b) for i, a in enumerate(pending) for b in pending[i + 1:])
    trainer.flush()                                        # the history reads them as before
    assert len(trainer.history["d_loss"]) == 4


@pytest.mark.parametrize("recipe", ["dcgan", "cdcgan"])
def test_replays_draw_the_same_noise_and_labels_as_the_step_does(fake_gpu, recipe):
    """The same generator state gives the graphed step the eager step's draws, step for step (the GPU
    test of equal training needs it): the fake labels first, then the noise, as train_step draws them."""
    _, gpu_trainer = fake_gpu
    eager, graphed_trainer = gpu_trainer(recipe), gpu_trainer(recipe)
    drawn = []
    sample_noise = eager.sample_noise
    eager.sample_noise = lambda n, rng=None: drawn.append(sample_noise(n)) or drawn[-1]
    graphed = CudaGraphStep(graphed_trainer, warmup=1)
    for seed in range(5):
        eager.train_step(batch_for(recipe, 4, seed))
        graphed(batch_for(recipe, 4, seed))
    (recorded,) = graphed.recorded.values()
    np.testing.assert_array_equal(recorded.noise, drawn[-1])


class HookLog:
    """An extension that notes each hook call with the step counters it sees."""

    def __init__(self):
        self.calls = []

    def before_step(self, trainer):
        self.calls.append(("before_step", trainer.d_steps, trainer.g_steps))

    def after_d_step(self, trainer):
        self.calls.append(("after_d_step", trainer.d_steps, trainer.g_steps))

    def after_g_step(self, trainer):
        self.calls.append(("after_g_step", trainer.d_steps, trainer.g_steps))


def test_extension_hooks_run_between_the_segments_as_in_the_step(fake_gpu):
    """Hooks run as usual at each replay, in the step's order and seeing the counters the step shows them."""
    fake, gpu_trainer = fake_gpu
    eager, graphed_trainer = gpu_trainer(), gpu_trainer()
    eager.extensions.append(HookLog())
    graphed_trainer.extensions.append(HookLog())
    graphed = CudaGraphStep(graphed_trainer, warmup=1)
    for seed in range(5):
        eager.train_step(batch_for("dcgan", 4, seed))
        graphed(batch_for("dcgan", 4, seed))
    assert graphed_trainer.extensions[0].calls == eager.extensions[0].calls
    assert len(eager.extensions[0].calls) == 15 and fake.log.count("begin") == 3
    (recorded,) = graphed.recorded.values()
    # host work first (before_step), then graph, optimizer step, counter, hook, graph, ..., graph
    assert [hasattr(s, "launch") for s in recorded.segments] == [False, True, False, False, False, True,
                                                                   False, False, False, True]


def test_a_hook_that_replaces_an_array_during_a_replay_stops_it(fake_gpu):
    class ReplacesOnItsSecondCall:
        calls = 0

        def after_g_step(self, trainer):
            self.calls += 1
            if self.calls == 2:
                _, layer, key = trainer.G.named_parameters()[0]
                layer.params[key] = layer.params[key].copy()
    _, gpu_trainer = fake_gpu
    trainer = gpu_trainer()
    trainer.extensions.append(ReplacesOnItsSecondCall())
    graphed = CudaGraphStep(trainer, warmup=0)
    graphed(batch_for("dcgan"))                                  # recorded: the first call replaces nothing
    with pytest.raises(CudaGraphError, match="replaced arrays of G or D during a replay"):
        graphed(batch_for("dcgan"))


def test_the_weight_average_of_dcgan_plus_moves_at_every_replay(fake_gpu):
    _, gpu_trainer = fake_gpu
    trainer = gpu_trainer("dcgan-plus")
    (average,) = trainer.extensions
    graphed = CudaGraphStep(trainer, warmup=0)
    for seed in range(4):
        graphed(batch_for("dcgan", 4, seed))
    assert average.updates == 4 and trainer.g_steps == 4


def test_a_moved_array_or_another_batch_shape_is_recorded_again(fake_gpu):
    fake, gpu_trainer = fake_gpu
    trainer = gpu_trainer()
    graphed = CudaGraphStep(trainer, warmup=0)
    graphed(bench.real_batch("dcgan", 4))
    graphed(bench.real_batch("dcgan", 4))
    assert fake.log.count("begin") == 3
    _, layer, key = trainer.G.named_parameters()[0]
    layer.params[key] = layer.params[key].copy()          # as loading a checkpoint might
    graphed(bench.real_batch("dcgan", 4))
    assert fake.log.count("begin") == 6
    trainer.extensions.append(HookLog())                   # an extension joins: recorded again, with its hooks
    graphed(bench.real_batch("dcgan", 4))
    assert fake.log.count("begin") == 9 and trainer.extensions[0].calls[0][0] == "before_step"
    full = graphed.recorded[(((4, 1, 28, 28), "<f4"),)]
    graphed(bench.real_batch("dcgan", 3))                  # an epoch's last, shorter batch
    assert fake.log.count("begin") == 12 and len(graphed.recorded) == 2
    # the shorter batch replaced the layers' reused temporaries; the first recording still holds its own
    in_layers = {id(a) for model in (trainer.G, trainer.D) for _, layer in model.named_layers()
                 for a in layer._scratch.values()}
    assert full.scratch and not any(id(a) in in_layers for a in full.scratch)


def trainers_that_draw(gpu_trainer):
    """Steps with random draws of their own: dropout masks (the global generator) and label flips
    (the trainer's), with a batch for each."""
    return [(gpu_trainer("mlp", dropout=0.5), bench.real_batch("mlp", 4)),
            (gpu_trainer(flip_prob=0.3), bench.real_batch("dcgan", 4))]


def test_random_draws_inside_the_step_are_boundaries_made_again_at_every_replay(fake_gpu):
    """A draw ends the graph being recorded, is made as usual, and is made again into the same array at
    every replay, before the graphs that read it; the generators are put back afterwards."""
    from scratchgan.gan.cuda_graph import _Redraw
    fake, gpu_trainer = fake_gpu
    for trainer, batch in trainers_that_draw(gpu_trainer):
        originals = trainer.rng, backend.global_rng()
        graphed = CudaGraphStep(trainer, warmup=0)
        fake.log.clear()
        graphed(batch)
        assert (trainer.rng, backend.global_rng()) == originals and fastpath.capture_matmul is None
        (recorded,) = graphed.recorded.values()
        redraws = [s for s in recorded.segments if isinstance(s, _Redraw)]
        assert len(redraws) == 2 and fake.log.count("begin") == 3 + len(redraws)   # one draw per part of the step
        arrays, first = [r.array for r in redraws], [r.array.copy() for r in redraws]
        graphed(batch)
        assert all(r.array is a for r, a in zip(redraws, arrays))                  # drawn anew, in place
        assert not any(np.array_equal(r.array, f) for r, f in zip(redraws, first))
        trainer.train_step(batch)                          # and the step runs as usual beside it


def test_replays_draw_the_same_masks_and_flips_as_the_step_does(fake_gpu, monkeypatch):
    """From the same seeds, five eager steps and five graphed ones (one warm-up, one recorded, three
    replayed) draw the same numbers in the same order from both generators."""
    _, gpu_trainer = fake_gpu
    drawn = []
    uniform = backend.RNG.uniform

    def logged(self, *args, **kwargs):
        numbers = uniform(self, *args, **kwargs)
        drawn.append(numbers.copy())               # a replay draws into the recorded array again
        return numbers
    monkeypatch.setattr(backend.RNG, "uniform", logged)
    for index in range(2):
        sequences = []
        for graphed in (False, True):
            drawn.clear()
            trainer, _ = trainers_that_draw(gpu_trainer)[index]
            step = CudaGraphStep(trainer, warmup=1) if graphed else trainer.train_step
            for seed in range(5):
                step(bench.real_batch("mlp" if index == 0 else "dcgan", 4, seed=seed))
            sequences.append(list(drawn))
        assert len(sequences[0]) == len(sequences[1]) > 5
        for eager, replayed in zip(*sequences):
            np.testing.assert_array_equal(replayed, eager)


def test_host_random_numbers_inside_the_step_are_refused(fake_gpu, monkeypatch):
    """Host numbers (RNG.host) would be copied to the device inside the graph: refused, everything put back."""
    fake, gpu_trainer = fake_gpu
    trainer = gpu_trainer()
    forward = type(trainer.D[0])._forward
    monkeypatch.setattr(type(trainer.D[0]), "_forward",
                        lambda self, x, train: (backend.global_rng().host, forward(self, x, train))[1])
    originals = trainer.rng, backend.global_rng()
    graphed = CudaGraphStep(trainer, warmup=0)
    with pytest.raises(CudaGraphError, match="random generator's host inside the graph"):
        graphed(batch_for("dcgan"))
    assert not graphed.stream.is_capturing() and fake.allocators == [] and fastpath.capture_matmul is None
    assert (trainer.rng, backend.global_rng()) == originals and "step" not in vars(trainer.opt_d)
    monkeypatch.undo()
    trainer.train_step(batch_for("dcgan"))                 # the step runs as usual afterwards


def test_a_step_that_replaces_its_own_buffers_is_refused(fake_gpu):
    """Spectral normalisation assigns new u and v every forward: a replay would read the old, freed ones."""
    _, gpu_trainer = fake_gpu
    trainer = gpu_trainer(spectral_norm=True)
    assert unsupported(trainer) is None
    graphed = CudaGraphStep(trainer, warmup=0)
    with pytest.raises(CudaGraphError, match=r"replaces D\.0\.u, D\.0\.v, D\.2\.u, D\.2\.v, D\.5\.u, D\.5\.v with new"):
        graphed(batch_for("dcgan"))
    assert trainer.d_steps == 1 and len(trainer._pending) == 1   # that step trained, and counts
    trainer.train_step(batch_for("dcgan"))                      # and the step runs as usual after


def test_a_failed_replay_is_a_cuda_graph_error(fake_gpu):
    _, gpu_trainer = fake_gpu
    graphed = CudaGraphStep(gpu_trainer(), warmup=0)
    graphed(batch_for("dcgan"))
    (recorded,) = graphed.recorded.values()
    recorded.segments[0].launch = lambda stream=None: (_ for _ in ()).throw(RuntimeError("cudaErrorLaunchFailure"))
    with pytest.raises(CudaGraphError, match="replaying the recorded step failed: cudaErrorLaunchFailure"):
        graphed(batch_for("dcgan"))


def test_bench_falls_back_and_says_why(monkeypatch):
    record = bench.run_benchmark("mlp", "cpu", batch=4, steps=1, warmup=1, cuda_graph=True)
    assert record["cuda_graph"] is False and "GPU" in record["cuda_graph_error"] and record["graph_pool_mib"] == 0
    assert bench.run_benchmark("mlp", "cpu", batch=4, steps=1, warmup=1)["cuda_graph"] is False


def test_bench_cli_rejects_cuda_graph_on_the_cpu(capsys):
    assert bench.main(["--device", "cpu", "--cuda-graph", "--steps", "1", "--warmup", "0"]) == 2
    assert "--cuda-graph" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.parametrize("workload", ["dcgan", "mlp", "cdcgan", "acgan", "dcgan-plus", "goodfellow2014", "cgan"])
def test_gpu_graphed_steps_train_as_the_eager_step_does(cupy, monkeypatch, workload):
    """Float64 on the GPU: eight steps eagerly and eight through CudaGraphStep (two warm-up, one recorded,
    five replayed) from the same weights, noise and dropout masks give the same weights and history."""
    monkeypatch.delenv("SCRATCHGAN_FUSED", raising=False)
    backend.set_default_dtype(np.float64)
    try:
        results = []
        for graphed in (False, True):
            trainer = make_trainer(workload, batch=8, device="gpu")
            step = CudaGraphStep(trainer) if graphed else trainer.train_step
            for seed in range(8):
                batch = batch_for(workload, 8, seed)
                parts = batch if isinstance(batch, tuple) else (batch,)
                on_gpu = tuple(cupy.asarray(p.astype(np.float64) if p.dtype.kind == "f" else p) for p in parts)
                step(on_gpu if isinstance(batch, tuple) else on_gpu[0])
            trainer.flush()
            averages = {f"{i}.{k}": v for i, ext in enumerate(trainer.extensions) if hasattr(ext, "state_dict")
                        for k, v in ext.state_dict().items() if isinstance(v, np.ndarray)}
            results.append((trainer.G.state_dict(), trainer.D.state_dict(), averages, trainer.history))
        for a, b in zip(results[0][:3], results[1][:3]):
            for key in a:
                np.testing.assert_allclose(b[key], a[key], rtol=1e-12, atol=1e-12, err_msg=key)
        for key, values in results[0][3].items():
            np.testing.assert_allclose(results[1][3][key], values, rtol=1e-12, atol=1e-12, err_msg=key)
    finally:
        backend.set_default_dtype(np.float32)


def test_train_cli_rejects_cuda_graph_on_the_cpu_before_creating_the_run(tmp_path, capsys):
    from scratchgan.cli import main
    out = tmp_path / "run"
    assert main(["train", "mlp", "--cuda-graph", "--out", str(out), "--quiet"]) == 2
    assert "--cuda-graph" in capsys.readouterr().err and not out.exists()


def test_train_run_names_why_a_step_cannot_be_graphed(tmp_path):
    from scratchgan.gan.run import RunError, train_run
    images = (np.random.default_rng(0).random((8, 1, 28, 28)) * 255).astype(np.uint8)
    with pytest.raises(RunError, match="--cuda-graph: CUDA graphs need the GPU"):
        train_run("mlp", tmp_path / "run", images, epochs=1, quiet=True, evaluate=False, cuda_graph=True, batch_size=4)
    assert not (tmp_path / "run").exists()                 # no empty run folder left behind
    assert "not CycleGANTrainer" in unsupported(type("CycleGANTrainer", (), {})())


@pytest.mark.gpu
@pytest.mark.parametrize("workload", ["dcgan", "mlp"])
def test_gpu_bench_replays_the_graphs(cupy, monkeypatch, workload):
    monkeypatch.delenv("SCRATCHGAN_FUSED", raising=False)
    record = bench.run_benchmark(workload, "gpu", batch=16, steps=3, warmup=3, cuda_graph=True)
    assert record["cuda_graph"] is True and "cuda_graph_error" not in record, record.get("cuda_graph_error")
    assert record["graph_pool_mib"] > 0


def test_train_cli_passes_cuda_graph_to_the_run(tmp_path, monkeypatch):
    """--cuda-graph reaches train_run (and no other function's options) when the device is the GPU."""
    import scratchgan.cli as cli
    import scratchgan.gan.run as run
    from scratchgan.data import write_idx
    monkeypatch.setattr("scratchgan.backend.xp_for", lambda device: np)   # no GPU needed to reach the run
    seen = {}

    def fake_train_run(*args, **kw):
        seen.update(kw)
    monkeypatch.setattr(run, "train_run", fake_train_run)
    data = tmp_path / "mnist"
    data.mkdir()
    images = (np.random.default_rng(0).random((8, 28, 28)) * 255).astype(np.uint8)
    for split in ("train", "t10k"):
        write_idx(data / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(data / f"{split}-labels-idx1-ubyte.gz", np.zeros(8, np.uint8))
    assert cli.main(["train", "mlp", "--device", "gpu", "--cuda-graph", "--data-dir", str(data),
                     "--batch-size", "4", "--out", str(tmp_path / "run"), "--quiet", "--no-report"]) == 0
    assert seen["cuda_graph"] is True and seen["device"] == "gpu"


def test_train_run_steps_through_the_graphed_step(tmp_path, fake_gpu, monkeypatch):
    """With the stand-in CuPy (and the GPU check waived) a whole run goes through CudaGraphStep: two
    warm-up steps, one recording, replays for the rest, one history row per step, a checkpoint."""
    from scratchgan.gan.run import train_run
    fake, _ = fake_gpu
    monkeypatch.setattr(cuda_graph, "unsupported", lambda trainer: None)
    images = (np.random.default_rng(0).random((24, 1, 28, 28)) * 255).astype(np.uint8)
    trainer = train_run("dcgan", tmp_path / "run", images, epochs=1, quiet=True, evaluate=False,
                        final_outputs=False, cuda_graph=True, batch_size=4)
    assert fake.log.count("begin") == 3 and fake.log.count("launch") == 3 + 3 * 3   # 6 steps: 2 + 1 + 3
    assert trainer.d_steps == trainer.g_steps == 6 and len(trainer.history["d_loss"]) == 6
    assert (tmp_path / "run" / "checkpoint.npz").exists()


STEP_MODULES = [*sorted(pathlib.Path(backend.__file__).parent.joinpath("layers").glob("*.py")),
                *(pathlib.Path(backend.__file__).parent / name for name in (
                    "fastpath.py", "gpu_kernels.py", "losses.py", "optim.py", "penalties.py", "gan/trainer.py",
                    "gan/averaging.py", "gan/conditional.py", "gan/dcgan_plus.py", "gan/objectives.py"))]
PRODUCTS = {"matmul", "dot", "tensordot", "einsum", "inner", "vdot"}


def products_outside_fastpath_matmul(path):
    """Lines of ``path`` that form a matrix product other than through fastpath.matmul: ``@``, or
    xp.matmul / dot / einsum ... on an array module that may be CuPy (``np.`` is NumPy's own)."""
    tree = ast.parse(path.read_text())
    allowed = {id(node) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "matmul"
               and path.name == "fastpath.py" for node in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        if id(node) in allowed:
            continue
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.MatMult):
            found.append(node.lineno)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in PRODUCTS
              and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "np")):
            found.append(node.lineno)
    return sorted(found)


@pytest.mark.parametrize("path", STEP_MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_product_of_the_step_goes_through_fastpath_matmul(path):
    """While a CUDA graph records, CuPy refuses cuBLAS: only fastpath.matmul's products are recorded
    (through cublas_capture.py). Spectral normalisation is exempt: its step cannot be graphed anyway
    (it replaces its buffers, test_a_step_that_replaces_its_own_buffers_is_refused)."""
    found = products_outside_fastpath_matmul(path)
    if path.name == "spectral_norm.py":
        assert found, "spectral_norm.py forms its products through fastpath.matmul now: drop its exemption"
    else:
        assert not found, f"{path.name}: products at lines {found} bypass fastpath.matmul"


def test_the_product_scan_finds_products():
    """The scan above sees ``@``, ``@=`` and xp.matmul, and lets NumPy's own and fastpath.matmul's pass."""
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "fastpath.py"
        path.write_text("def f(a, b, xp):\n    c = a @ b\n    c @= b\n    np.einsum('i,i', a, b)\n"
                        "    return xp.dot(a, b)\n\ndef matmul(a, b):\n    return xp.matmul(a, b)\n")
        assert products_outside_fastpath_matmul(path) == [2, 3, 5]
