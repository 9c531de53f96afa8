"""The GPU training step replayed as CUDA graphs: its kernels issued once from Python, then launched
by the driver in a few calls per step.

On the GPU the step waits on Python issuing its kernels (docs/performance.md, "GPU"): about 190
launches for ``dcgan``, each costing tens of microseconds of host time. A CUDA graph records a
stream's kernels once (stream capture: nothing runs while it records) and replays them with one
call. ``CudaGraphStep(trainer)`` is a drop-in for ``trainer.train_step``:

- its first calls run the step as usual (``warmup``), on the stream that will record it: CuPy
  compiles its kernels, and cuBLAS and the memory pool set up for that stream, none of which may
  happen while recording. Everything runs on that stream, which waits for the caller's stream's
  work before each step and makes the caller's stream wait for its own after;
- the next call records the step, split into segments at the optimizer steps, at the
  extensions' hooks (``before_step``, ``after_d_step``, ``after_g_step``) and at random draws.
  These run as usual between the segments, so an optimizer's step count and learning rate (a schedule's too) and a
  weight average stay on the host as before. Each segment is launched as soon as it is recorded,
  so this call trains too;
- every later call with a batch of the same shape copies the batch and a fresh noise draw into the
  recorded step's input arrays, replays the segments and the optimizer steps between them, and
  keeps a copy of the step's metrics (``trainer.flush`` reads them as before).

What a graph may not do, and how this keeps to it:

- **Random numbers inside it** would replay the same numbers every step (and CuPy's generators
  refuse to run while a stream records). The noise (and a conditional model's fake labels) is drawn
  outside the graph into its input array. Any other draw inside the step (a dropout mask, label
  flips) ends the segment being recorded and is made as usual; the graphs after it read the array
  it returned, and every replay draws again into that array at the same point, so the step draws
  what it would draw issued as usual, in the same order. Host numbers (``RNG.host``) would be
  copied to the device inside the graph: refused (``CudaGraphError``).
- **Host round trips** (reading a value, copying from the host) cannot be recorded: CuPy raises, and so
  does this.
- **cuBLAS through CuPy**: CuPy refuses to call cuBLAS while a stream records. Every product of the
  layers goes through ``fastpath.matmul``, which meanwhile makes CuPy's own cuBLAS call itself
  (cublas_capture.py).
- **Memory.** The graph writes to the addresses it recorded. Its own temporaries come from a memory
  pool of its own (``self.pool``) that no other code allocates from. Arrays it reads or writes from
  before the recording (parameters, gradients, BatchNorm's running statistics, its input arrays)
  must stay where they are: the step updates them in place, and a replay first checks that they
  are the same arrays, recording again if one was replaced (a checkpoint loaded, say). A step that
  replaces one of them itself (spectral normalisation's u and v) is refused after its recording.
  The layers' reused temporaries (``fastpath.reuse_buffer``), which a step of another batch shape
  replaces, are held by the recording that uses them, so their memory never goes to another array.

``GraphedOrAsUsual(trainer)`` falls back to ``train_step`` where the step cannot be recorded (``bench``).

Supported: a GANTrainer (conditional or not) with one discriminator step per generator step, whose
extensions act through the hooks around the optimizer steps (a learning-rate schedule, a weight
average), with the fused kernels or without them; ``unsupported`` says why not otherwise.
"""
import contextlib
import functools

from .. import backend, fastpath
from .cublas_capture import CapturedMatmul
from .trainer import GANTrainer


class CudaGraphError(RuntimeError):
    """The training step cannot be recorded as a CUDA graph (the reason is in the message)."""


def unsupported(trainer):
    """Why ``trainer``'s step cannot be graphed, or None."""
    if not isinstance(trainer, GANTrainer):
        return f"only the noise-to-image GAN step is recorded, not {type(trainer).__name__}'s"
    if trainer.device != "gpu":
        return "CUDA graphs need the GPU (--device gpu)"
    inside = [type(e).__name__ for e in trainer.extensions if hasattr(e, "d_penalty") or hasattr(e, "g_penalty")]
    if inside:
        return f"the step computes penalties of its extensions inside it ({', '.join(inside)})"
    if trainer.config.k != 1:
        return f"k = {trainer.config.k}: the step alternates between two kinds"
    return None


class _DrawsBetweenGraphs:
    """Stands in for a random generator (backend.RNG) while the step is recorded: each draw on the device
    is a boundary of the recording (``_Recorder.draw``), made as usual between two graphs and made again
    at every replay. Host numbers (``RNG.host``) are refused: the step would copy them to the device."""

    def __init__(self, rng, recorder):
        self._rng, self._recorder = rng, recorder

    def normal(self, *args, **kwargs):
        return self._recorder.draw(functools.partial(self._rng.normal, *args, **kwargs))

    def uniform(self, *args, **kwargs):
        return self._recorder.draw(functools.partial(self._rng.uniform, *args, **kwargs))

    def __getattr__(self, name):
        raise CudaGraphError(f"the step uses its random generator's {name} inside the graph: host numbers "
                             "copied to the device, which a recording cannot repeat")


class CudaGraphStep:
    """``trainer.train_step`` as recorded CUDA graphs, replayed (see the module's docstring)."""

    def __init__(self, trainer, warmup=2):
        reason = unsupported(trainer)
        if reason:
            raise CudaGraphError(reason)
        self.trainer, self.warmup = trainer, warmup
        self.cupy = backend.cupy_module()
        self.stream = self.cupy.cuda.Stream(non_blocking=True)
        self.pool = self.cupy.cuda.MemoryPool()   # the graphs' temporaries, never handed to other code
        self.matmul = None                         # the products while recording (cublas_capture.py)
        self.recorded = {}                         # the batch's arrays' (shape, dtype) -> _Recorded

    def __call__(self, batch):
        trainer = self.trainer
        outside = self.cupy.cuda.get_current_stream()   # the caller's stream (the default one, usually)
        self.stream.wait_event(outside.record())   # the batch and any earlier work first
        with self.stream:                          # warm-up on the recording's stream too (cuBLAS, the pool)
            if self.warmup > 0:
                self.warmup -= 1
                trainer.train_step(batch)
            else:
                self._graphed_step(batch)
        outside.wait_event(self.stream.record())   # whatever reads the results after waits for them
        if len(trainer._pending) >= trainer.sync_every:
            trainer.flush()
        return True

    def _graphed_step(self, batch):
        """Replay the recording for this batch shape, or record one (again, if an array was replaced or the
        extensions changed)."""
        key = tuple((part.shape, part.dtype.str) for part in _parts(batch))
        recorded = self.recorded.get(key)
        if (recorded is not None and _same_arrays(recorded.arrays, self._arrays())
                and _same_arrays(recorded.extensions, tuple(self.trainer.extensions))):
            try:
                recorded.replay(batch)
            except Exception as error:   # a CUDA error launching a graph, say: bench falls back, train stops
                raise CudaGraphError(f"replaying the recorded step failed: {error}") from error
            if not _same_arrays(recorded.arrays, self._arrays()):   # a hook or an optimizer replaced one
                raise CudaGraphError("an optimizer step or a hook replaced arrays of G or D during a replay, "
                                     "so the graphs after it used the old ones")
        else:
            self.recorded[key] = self._record(batch)

    def _arrays(self):
        """The arrays that the graph reads and writes in place (held by a recording, so never freed under it)."""
        return tuple(array for _, array in self._model_arrays())

    def _model_arrays(self):
        """(name, array) of every parameter, gradient and buffer of G and D, e.g. ("D.1.u", ...)."""
        for model_name, model in (("G", self.trainer.G), ("D", self.trainer.D)):
            for prefix, layer in model.named_layers():
                for kind, store in (("", layer.params), ("grad of ", layer.grads), ("", layer.buffers)):
                    for key, array in store.items():
                        yield f"{kind}{model_name}.{prefix + '.' if prefix else ''}{key}", array

    def _check_nothing_moved(self, before):
        """CudaGraphError naming the arrays that the recorded step replaced instead of updating in place: a
        replay would read the old ones, whose memory is freed (spectral normalisation's u and v, say)."""
        moved = [name for (name, array), old in zip(self._model_arrays(), before) if array is not old]
        if moved:
            raise CudaGraphError(f"the step replaces {', '.join(moved)} with new arrays instead of updating them "
                                 "in place, so a replay would read memory that is no longer theirs")

    def _record(self, batch):
        """Record the step on a copy of ``batch`` and fresh draws, launching each segment as it is recorded
        (so this step trains too). Segments end where the step hands over to the host: at the optimizer
        steps and at the trainer's calls of its extensions' hooks (``trainer._after``), which run as usual
        between the segments, after the step counters that the trainer advances there (``_Recorder``)."""
        trainer = self.trainer
        trainer.flush()                            # flushing reads the device: not while recording
        arrays = self._arrays()
        real = tuple(part.copy() for part in _parts(batch))
        n = len(real[0])
        fake_labels = trainer.sample_labels(n) if trainer.conditional else None   # train_step's order of draws
        noise = trainer.sample_noise(n)
        recorder = None
        try:
            self.matmul = self.matmul or CapturedMatmul.for_cupy(self.cupy)
            recorder = _Recorder(trainer, _Capture(self.cupy, self.stream, self.pool, self.matmul))
            with _stand_ins(trainer, recorder, noise, fake_labels):
                trainer.train_step(real if trainer.conditional else real[0])
            segments = recorder.finish()
        except Exception as error:
            if recorder is not None:
                recorder.capture.abandon()
            trainer.G.clear_cache()                # the half-run step's caches, so the step can run as usual
            trainer.D.clear_cache()
            if isinstance(error, CudaGraphError):
                raise
            raise CudaGraphError(f"the step could not be recorded as a CUDA graph: {error}") from error
        metrics, g_turn = trainer._pending[-1]
        trainer._pending[-1] = (metrics.copy(), g_turn)   # the recorded array is rewritten by every replay
        self._check_nothing_moved(arrays)          # this step trained; the recording is refused
        return _Recorded(trainer, segments, real, (noise, fake_labels), metrics, g_turn, self._arrays(),
                         self._scratch_arrays())

    def _scratch_arrays(self):
        """The layers' reused temporaries (``fastpath.reuse_buffer``) that the recording writes to. A step
        with another batch shape replaces them in the layers' stores; the recording keeps its own alive."""
        return [array for model in (self.trainer.G, self.trainer.D) for _, layer in model.named_layers()
                for array in layer._scratch.values()]


class GraphedOrAsUsual:
    """``CudaGraphStep(trainer)``, falling back to ``trainer.train_step`` for good where the step cannot be
    recorded or replayed, with the reason in ``error`` (``scratchgan bench --cuda-graph``)."""

    def __init__(self, trainer, warmup=2):
        self.trainer, self.graphed, self.error = trainer, None, None
        try:
            self.graphed = CudaGraphStep(trainer, warmup)
        except CudaGraphError as err:
            self.error = str(err)

    def __call__(self, batch):
        if self.error is None:
            try:
                return self.graphed(batch)
            except CudaGraphError as err:      # while recording or replaying: from now on as usual
                self.error = str(err)
        return self.trainer.train_step(batch)

    def pool_mib(self):
        """The recordings' own memory pool (beside the default pool's)."""
        return 0.0 if self.graphed is None else round(self.graphed.pool.total_bytes() / 2**20, 1)


class _Recorder:
    """The segments of one recorded step: graphs, and between them the host's work, which every replay
    runs again: the optimizer steps, the step counters the trainer then advances, the extensions' hooks.

    GANTrainer calls ``_after`` (its hooks) first thing in a step and right after each optimizer step,
    before any kernel: so ``optimizer_step`` ends a graph and ``hook`` begins the next one."""

    def __init__(self, trainer, capture):
        self.trainer, self.capture, self.segments = trainer, capture, []
        self.counted = trainer.d_steps, trainer.g_steps
        self.run_hooks = trainer._after

    def optimizer_step(self, original):
        """``original`` (an optimizer's step) as a boundary: the graph so far ends, the step runs as usual."""
        def step():
            self.segments.append(self.capture.end_and_launch())
            original()
            self.segments.append(original)
        return step

    def hook(self, hook, *args):
        """``trainer._after`` as a boundary: the counters advanced since, then the hooks, then a new graph."""
        if self.capture.active:
            self.segments.append(self.capture.end_and_launch())
        trainer = self.trainer
        advanced = trainer.d_steps - self.counted[0], trainer.g_steps - self.counted[1]
        if any(advanced):
            self.segments.append(functools.partial(_advance, trainer, *advanced))
            self.counted = trainer.d_steps, trainer.g_steps
        self.run_hooks(hook, *args)
        if any(hasattr(ext, hook) for ext in trainer.extensions):
            self.segments.append(functools.partial(self.run_hooks, hook, *args))
        self.capture.begin()

    def draw(self, make):
        """A random draw (``make()``) as a boundary: the graph so far ends, the draw is made as usual, and
        the array it returns is what later graphs read; every replay makes it again into that array."""
        if self.capture.active:
            self.segments.append(self.capture.end_and_launch())
        drawn = make()
        self.segments.append(_Redraw(drawn, make))
        self.capture.begin()
        return drawn

    def finish(self):
        self.segments.append(self.capture.end_and_launch())
        _check_segments(self.segments)
        return self.segments


class _Redraw:
    """At a replay, a fresh draw into the array that the recorded graphs read (``_Recorder.draw``)."""

    def __init__(self, array, make):
        self.array, self.make = array, make

    def __call__(self):
        self.array[...] = self.make()


@contextlib.contextmanager
def _stand_ins(trainer, recorder, noise, fake_labels):
    """While recording: the optimizer steps, the hooks and any other random draw (_DrawsBetweenGraphs) as
    the recorder's boundaries, the noise and fake labels drawn beforehand, no flush; everything put back
    after."""
    saved = trainer.rng, backend.global_rng(), trainer.sync_every
    optimizers = (trainer.opt_d, trainer.opt_g)
    try:
        for opt in optimizers:
            opt.step = recorder.optimizer_step(opt.step)
        trainer._after = recorder.hook
        trainer.sample_noise = lambda n, rng=None: noise
        trainer.sample_labels = lambda n: fake_labels
        trainer.rng, backend._rng = (_DrawsBetweenGraphs(rng, recorder) for rng in saved[:2])
        trainer.sync_every = len(trainer._pending) + 2     # no flush inside the recorded step
        yield
    finally:
        for opt in optimizers:
            vars(opt).pop("step", None)
        for name in ("_after", "sample_noise", "sample_labels"):
            vars(trainer).pop(name, None)
        trainer.rng, backend._rng, trainer.sync_every = saved


def _advance(trainer, d_steps, g_steps):
    """What the trainer's Python does after an optimizer step, done again at each replay: count it."""
    trainer.d_steps += d_steps
    trainer.g_steps += g_steps


def _check_segments(segments):
    """The recording as GANTrainer's step makes it: graphs separated by host work (optimizer steps, then the
    counters and hooks), ending in a graph. CudaGraphError otherwise: a kernel issued between an optimizer
    step and the next hook call would have run once instead of being recorded."""
    kinds = [("graph" if hasattr(s, "launch") else "host") for s in segments if not isinstance(s, _Redraw)]
    runs = [kind for i, kind in enumerate(kinds) if i == 0 or kinds[i - 1] != kind]   # a draw only splits a graph
    if not kinds or kinds[-1] != "graph" or runs.count("graph") != 3:
        raise CudaGraphError(f"the step did not split as a GAN step does (two optimizer steps between three "
                             f"recorded parts): got {kinds}")


def _parts(batch):
    """A batch's arrays: (images,), or (images, labels) for a conditional model."""
    return batch if isinstance(batch, tuple) else (batch,)


def _same_arrays(recorded, now):
    """Whether the models hold the very arrays (or the trainer the very extensions) a recording was made
    with: none replaced, none added."""
    return len(recorded) == len(now) and all(a is b for a, b in zip(recorded, now))


class _Capture:
    """Stream capture, one segment at a time, with the graphs' own memory pool and the layers' products
    through cuBLAS directly (``fastpath.matmul``; CuPy's own refuse to run while a stream records)."""

    def __init__(self, cupy, stream, pool, matmul):
        self.cupy, self.stream, self.pool, self.matmul = cupy, stream, pool, matmul
        self._switched = None                      # the allocator and the products, while recording

    @property
    def active(self):
        return self._switched is not None

    def begin(self):
        self._switched = contextlib.ExitStack()
        self._switched.enter_context(self.cupy.cuda.using_allocator(self.pool.malloc))
        self._switched.enter_context(_products_through(self.matmul))
        self.stream.begin_capture()

    def end_and_launch(self):
        graph = self.stream.end_capture()
        self._switch_back()
        graph.launch(self.stream)
        return graph

    def abandon(self):
        """After an error: end a capture in progress (its graph is invalid) and switch back."""
        if self.stream.is_capturing():
            with contextlib.suppress(Exception):
                self.stream.end_capture()
        self._switch_back()

    def _switch_back(self):
        if self._switched is not None:
            self._switched.close()
            self._switched = None


@contextlib.contextmanager
def _products_through(matmul):
    """``fastpath.matmul``'s products made by ``matmul`` (cublas_capture.CapturedMatmul) meanwhile."""
    fastpath.capture_matmul = matmul
    try:
        yield
    finally:
        fastpath.capture_matmul = None


class _Recorded:
    """One recorded step: its segments (graphs, and the host's work between them) and its arrays."""

    def __init__(self, trainer, segments, real, draws, metrics, g_turn, arrays, scratch):
        self.trainer, self.segments = trainer, segments
        self.real, self.metrics, self.g_turn = real, metrics, g_turn
        self.noise, self.fake_labels = draws   # fake_labels: None for an unconditional model
        self.arrays, self.extensions = arrays, tuple(trainer.extensions)
        self.scratch = scratch     # held so that their memory is never handed to other arrays

    def replay(self, batch):
        trainer = self.trainer
        for recorded, part in zip(self.real, _parts(batch)):
            recorded[...] = part
        n = len(self.real[0])
        if self.fake_labels is not None:                      # drawn in train_step's order: labels, noise
            self.fake_labels[...] = trainer.sample_labels(n)
        self.noise[...] = trainer.sample_noise(n)
        for segment in self.segments:
            if hasattr(segment, "launch"):
                segment.launch()
            else:
                segment()                          # an optimizer step, the counters, a hook: as usual
        trainer._pending.append((self.metrics.copy(), self.g_turn))
