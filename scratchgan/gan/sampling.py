"""Samples from a trained generator, rebuilt from a checkpoint alone.

A conditional checkpoint (cgan, cdcgan, acgan, ...) records its classes (``conditioning`` in its
meta: their number and names), so samples of chosen classes need nothing else.
"""
import numpy as np

from .. import backend
from .averaging import find_average
from .checkpoint import Checkpoint, CheckpointError
from .recipes import get_recipe
from .trainer import draw_noise


GENERATORS = ("auto", "average", "raw")


def load_generator(path, device="cpu", resolution=None, generator="auto"):
    """(G in eval mode, Setup) from a checkpoint written by ``scratchgan train``.

    A family whose generator has stages (progan, lapgan: ``set_sampling_stage``) is set to the stage it
    trained at (lapgan: its whole cascade), or to ``resolution``. ``generator``: "raw" (the trained G), "average" (the average
    of G's weights kept by a run with ``--ema``, gan/averaging.py; an error for a run without one)
    or "auto" (the average if the run kept one, else G: what the run itself samples from).
    """
    _, setup, G = _load(path, device, resolution, generator)
    return G, setup


def _load(path, device, resolution=None, generator="auto"):
    """(Checkpoint, Setup whose G holds the checkpoint's weights, in eval mode on ``device``, the
    generator to sample: that G or its weight average)."""
    if generator not in GENERATORS:
        raise ValueError(f"generator must be one of {', '.join(GENERATORS)}, got {generator!r}")
    checkpoint = Checkpoint(path)
    recipe = get_recipe(checkpoint.meta["recipe"])
    if not recipe.draws_samples:
        command = "translate" if recipe.name == "cyclegan" else "upscale"
        raise CheckpointError(f"{path} is a {recipe.name!r} run: it maps images to images and draws no samples "
                              f"from noise; give it images with `scratchgan {command}`")
    setup = rebuild_setup(checkpoint)
    checkpoint.load_generator(setup.G)
    set_stage = getattr(recipe.family, "set_sampling_stage", None)
    if set_stage is not None:
        set_stage(setup.G, checkpoint, resolution)
    elif resolution is not None:
        raise ValueError(f"--resolution applies to progan and lapgan checkpoints only; {path} is a "
                         f"{checkpoint.meta['recipe']!r} run")
    setup.G.to(device).eval()
    average = find_average(setup.extensions)
    if generator == "average" and average is None:
        raise CheckpointError(f"{path} is a run without a weight average (--ema): sample its generator "
                              f"with --generator raw (or auto)")
    if generator == "raw" or average is None:
        return checkpoint, setup, setup.G
    state = checkpoint.part(f"ext/{type(average).__name__}/")
    try:
        average.load_state_dict(state)
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path}: cannot load its averaged generator ({e})") from None
    return checkpoint, setup, average.averaged_generator(setup.G)


def rebuild_setup(checkpoint):
    """A fresh Setup of the checkpoint's recipe and options; CheckpointError if they make no sense."""
    meta = checkpoint.meta
    try:
        recipe = get_recipe(meta["recipe"])
        return recipe.setup(recipe.options(**checkpoint.options(recipe.defaults)), tuple(meta["image_shape"]))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {checkpoint.path} cannot be rebuilt: {e}") from None


def conditioning(checkpoint):
    """{"num_classes": K, "class_names": [...]} of a conditional checkpoint, None for an unconditional one."""
    recorded = checkpoint.meta.get("conditioning")
    if recorded is not None:
        return recorded
    k = int(checkpoint.meta.get("options", {}).get("num_classes") or 0)
    return {"num_classes": k, "class_names": [str(i) for i in range(k)]} if k else None


def parse_label(text, classes, path):
    """A --label value: a class index ("3") or a class name ("Sneaker", any case) of the checkpoint's classes,
    or "all"; returns the index, or None for "all". ValueError naming the classes otherwise."""
    if classes is None:
        raise ValueError(f"{path} is an unconditional model: it has no classes to choose from; leave out --label")
    if text.lower() == "all":
        return None
    names = classes["class_names"]
    k = classes["num_classes"]
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < k:
            raise ValueError(f"--label {text} is outside the {k} classes of {path}: 0..{k - 1} or all")
        return index
    lowered = [name.lower() for name in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    raise ValueError(f"--label {text!r} is not a class of {path}: give 0..{k - 1}, a name "
                     f"({', '.join(names)}) or all")


def sample_from_checkpoint(path, n, device="cpu", seed=0, batch_size=500, labels=None, resolution=None,
                           generator="auto"):
    """``n`` samples as float32 (n, C, H, W) NumPy images in [0, 1], from noise seeded by ``seed``
    (progan: at the stage it trained at, or at an earlier ``resolution`` it has reached; lapgan: the whole
    cascade, or the levels up to ``resolution``), drawn from the
    checkpoint's ``generator`` (load_generator: by default the run's weight average if it kept one).

    A conditional checkpoint draws sample i for class ``labels[i]`` (default: the classes 0, 1, ...,
    K-1 in turn); an unconditional one refuses ``labels``. Raises ValueError unless n >= 1, and
    CheckpointError if the generator's output is not finite (a checkpoint holding diverged weights),
    so no NaN image is ever returned.
    """
    return sample_with_labels(path, n, device, seed, batch_size, labels, resolution, generator)[0]


def sample_with_labels(path, n, device="cpu", seed=0, batch_size=500, labels=None, resolution=None,
                       generator="auto"):
    """(samples, labels) as sample_from_checkpoint: the labels the samples were drawn for (None for an
    unconditional checkpoint)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the number of samples must be a positive integer, got {n!r}")
    checkpoint, setup, G = _load(path, device, resolution, generator)
    labels = _labels_for(checkpoint.meta["recipe"], setup.config.num_classes, n, labels, path)
    rng = backend.RNG(seed)
    xp = backend.xp_for(device)
    config = setup.config
    out = []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        z = draw_noise(rng, (m, config.z_dim, *config.noise_shape), config.noise, np.float32, xp)
        inputs = z if labels is None else (z, backend.to_device(labels[start:start + m], device))
        out.append(backend.asnumpy(setup.to_unit(G.forward(inputs, train=False, keep_cache=False))))
    samples = np.concatenate(out).astype(np.float32)
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).reshape(n, -1).any(axis=1).sum())
        raise CheckpointError(f"the generator in {path} outputs NaN or infinite values ({bad} of {n} samples): "
                              f"its weights diverged; sample an earlier checkpoint or retrain")
    return samples, labels


def _labels_for(recipe, k, n, labels, path):
    """The labels to draw n samples for: None (unconditional), the classes in turn, or ``labels`` checked."""
    if not k:
        if labels is not None:
            raise ValueError(f"{path} is an unconditional model ({recipe}): it takes no labels")
        return None
    if labels is None:
        return np.arange(n, dtype=np.int64) % k
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise ValueError(f"expected {n} integer labels, got {labels.dtype} labels of shape {labels.shape}")
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels must be classes of {path}: 0..{k - 1}, got {labels.min()}..{labels.max()}")
    return labels.astype(np.int64)


def sample_classes(path, n, label=None, device="cpu", seed=0, resolution=None, generator="auto"):
    """What ``scratchgan sample --label`` draws: (samples, labels, class names).

    For a conditional checkpoint, ``label`` "all" or None draws n samples of every class in class
    order (K * n in all); a class index or name draws n of that class. An unconditional checkpoint
    draws n samples and refuses ``label`` (labels and names are then None).
    """
    checkpoint = Checkpoint(path)
    classes = conditioning(checkpoint)
    if label is not None:
        index = parse_label(str(label), classes, path)
    else:
        index = None
    if classes is None:
        return sample_from_checkpoint(path, n, device, seed, resolution=resolution, generator=generator), None, None
    k = classes["num_classes"]
    labels = np.repeat(np.arange(k, dtype=np.int64), n) if index is None else np.full(n, index, dtype=np.int64)
    samples, labels = sample_with_labels(path, len(labels), device, seed, labels=labels, resolution=resolution,
                                         generator=generator)
    return samples, labels, list(classes["class_names"])
