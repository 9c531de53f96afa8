"""``scratchgan translate`` (CycleGAN), ``scratchgan upscale`` (SRResNet/SRGAN) and their evaluation.

Both rebuild the trained generator from a checkpoint alone, as ``scratchgan sample`` does.
"""
from pathlib import Path

import numpy as np

from .. import backend
from ..data.folder import find_image_files, load_image
from ..fileio import atomic_write, check_writable_file
from .checkpoint import Checkpoint, CheckpointError
from .recipes import get_recipe

DIRECTIONS = {"a2b": "G", "b2a": "F"}
CYCLEGAN_RECIPES, SR_RECIPES = ("cyclegan",), ("srresnet", "srgan")


def load_image_to_image(path, recipes, prefix="G", device="cpu"):
    """(generator in eval mode, checkpoint) of a run of one of ``recipes``; CheckpointError otherwise."""
    checkpoint = Checkpoint(path)
    recipe_name = checkpoint.meta["recipe"]
    if recipe_name not in recipes:
        raise CheckpointError(f"{path} is a {recipe_name!r} run; this command needs a {' or '.join(recipes)} run")
    try:
        recipe = get_recipe(recipe_name)
        setup = recipe.setup(recipe.options(**_model_options(checkpoint.meta["options"])),
                             tuple(checkpoint.meta["image_shape"]))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} cannot be rebuilt: {e}") from None
    net = getattr(setup, prefix)
    checkpoint.load_generator(net, prefix)
    return net.to(device).eval(), checkpoint


def _model_options(options):
    """The options that build the models: srgan's init_from names a file needed only to start training."""
    return {k: (None if k == "init_from" else v) for k, v in options.items()}


# -- inputs and outputs -----------------------------------------------------------------------
def read_npy_images(path, shape_options, what="INPUT"):
    """An .npy of images in [0, 1] of one of ``shape_options`` per image, as float32 (N, ...)."""
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (ValueError, EOFError, OSError) as e:
        raise ValueError(f"{path}: not a readable .npy of images ({e})") from None
    if x.dtype.kind not in "fu" or x.ndim < 2 or len(x) == 0 or tuple(x.shape[1:]) not in shape_options:
        wanted = " or ".join(f"(N, {', '.join(map(str, s))})" for s in shape_options)
        raise ValueError(f"{path}: {what} must hold images {wanted} in [0, 1], got {x.dtype} {x.shape}")
    x = x.astype(np.float32) / 255 if x.dtype == np.uint8 else x.astype(np.float32)
    if not np.isfinite(x).all() or x.min() < -1e-6 or x.max() > 1 + 1e-6:
        raise ValueError(f"{path}: {what} pixels must lie in [0, 1] (finite), got [{np.nanmin(x):.3g}, {np.nanmax(x):.3g}]")
    return x.clip(0, 1)


def read_input_images(path, image_shape):
    """(images float32 (N, C, H, W) in [0, 1], names) from an .npy or a folder of images (resized to H)."""
    path = Path(path)
    if path.is_dir():
        files = find_image_files(path)
        images = np.stack([load_image(f, image_shape[1], image_shape[0]) for f in files]).astype(np.float32) / 255
        return images, [f.relative_to(path).as_posix() for f in files]
    if path.suffix != ".npy":
        raise ValueError(f"{path}: INPUT must be a folder of images or an .npy of (N, {', '.join(map(str, image_shape))}) images")
    images = read_npy_images(path, [tuple(image_shape)])
    return images, [f"{i:05d}.png" for i in range(len(images))]


def write_outputs(out, images, names, inputs=None):
    """``images`` (N, C, H, W) in [0, 1] to ``out``: an .npy (same layout), a .png grid (beside the inputs
    if given: input, output pairs), or a folder of PNGs named after the inputs."""
    from PIL import Image
    out = Path(out)
    if out.suffix == ".npy":
        with atomic_write(out) as f:
            np.save(f, images)
    elif out.suffix == ".png":
        from ..plots import save_grid
        tiles = images if inputs is None else np.stack([inputs, images], axis=1).reshape(-1, *images.shape[1:])
        save_grid(out, tiles, nrow=8)   # with inputs: four (input, output) pairs per row
    else:
        out.mkdir(parents=True, exist_ok=True)
        for image, name in zip(images, names):
            target = out / Path(name).with_suffix(".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.rint(image.transpose(1, 2, 0) * 255).astype(np.uint8)
            pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
            with atomic_write(target) as f:
                Image.fromarray(pixels).save(f, format="PNG")


def _check_output(out, allowed):
    out = Path(out)
    if out.suffix and out.suffix not in allowed:
        raise ValueError(f"-o must end in {' or '.join(a for a in allowed if a)}" + (" or name a folder" if "" in allowed else "")
                         + f", got {out}")
    if out.suffix:
        check_writable_file(out)


# -- the commands -----------------------------------------------------------------------------
def cmd_translate(args):
    from .cyclegan import translate_images
    _check_output(args.output, (".npy", ".png", ""))
    net, checkpoint = load_image_to_image(args.checkpoint, CYCLEGAN_RECIPES, DIRECTIONS[args.direction], args.device)
    images, names = read_input_images(args.input, checkpoint.meta["image_shape"])
    translated = translate_images(net, images, args.device)
    write_outputs(args.output, translated, names, inputs=images)
    o = checkpoint.meta["options"]
    source, target = (o["dataset_a"], o["dataset_b"]) if args.direction == "a2b" else (o["dataset_b"], o["dataset_a"])
    print(f"{len(images)} images translated {source} -> {target} ({args.direction}) written to {args.output}")
    return 0


def cmd_upscale(args):
    from .srgan import HIGH_SIZE, LOW_SIZE, upscale_images
    _check_output(args.output, (".npy", ".png"))
    net, _ = load_image_to_image(args.checkpoint, SR_RECIPES, "G", args.device)
    if Path(args.input).suffix != ".npy":
        raise ValueError(f"{args.input}: INPUT must be an .npy of (N, 7, 7) or (N, 1, 7, 7) images in [0, 1]")
    low = read_npy_images(args.input, [(LOW_SIZE, LOW_SIZE), (1, LOW_SIZE, LOW_SIZE)])
    low = low.reshape(len(low), 1, LOW_SIZE, LOW_SIZE)
    high = upscale_images(net, low, args.device)
    if args.output.endswith(".npy"):
        write_outputs(args.output, high[:, 0], None)
    else:
        from .srgan import nearest_upscale
        write_outputs(args.output, high, None, inputs=nearest_upscale(low))
    print(f"{len(low)} digits upscaled 7x7 -> {HIGH_SIZE}x{HIGH_SIZE} written to {args.output}")
    return 0


def evaluate_checkpoint(args):
    """``scratchgan evaluate`` on an image-to-image checkpoint: prints (and returns) its table; None for other files."""
    path = Path(args.samples)
    if path.suffix != ".npz":
        return None
    meta = Checkpoint(path).meta
    if meta["recipe"] in SR_RECIPES:
        from .srgan import SuperResolutionEvaluator, bicubic_row, evaluate_upscaler, format_quality_table, upscale_images
        net, _ = load_image_to_image(path, SR_RECIPES)
        data = SuperResolutionEvaluator(args.data_dir)
        n = min(args.n, len(data.images))
        images, labels = data.images[:n], data.labels[:n]
        rows = [] if args.no_reference else [bicubic_row(images, labels)]
        rows.append(evaluate_upscaler(lambda low: upscale_images(net, low), images, labels, name=path.parent.name
                                      or path.name))
        print(format_quality_table(rows))
        return rows
    if meta["recipe"] in CYCLEGAN_RECIPES:
        from .cyclegan import HeldOut, translate_images
        from .cyclegan_eval import format_translation_table
        G, _ = load_image_to_image(path, CYCLEGAN_RECIPES, "G")
        F, _ = load_image_to_image(path, CYCLEGAN_RECIPES, "F")
        heldout = HeldOut.load(meta["options"], args.data_dir, meta["image_shape"][1], quiet=True)
        if not heldout.paired:
            raise ValueError(f"{path}: its domains share no held-out file names: nothing to compare with the truth")
        row = heldout.final(G, F, "cpu", seed=args.seed)
        print(format_translation_table(row))
        return [row]
    return None


def add_commands(sub):
    from ..backend import DEVICES
    p = sub.add_parser("translate", help="translate images with a CycleGAN checkpoint (A -> B or B -> A)",
                       description="Translate INPUT (a folder of images, or an .npy of (N, 3, H, W) in [0, 1]) with "
                                   "the generator of a cyclegan CHECKPOINT. -o: an .npy (same layout), a .png grid "
                                   "(input, translation pairs) or a folder of PNGs named after the inputs.")
    p.add_argument("checkpoint")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--direction", choices=tuple(DIRECTIONS), default="a2b", help="a2b (G, default) or b2a (F)")
    p.add_argument("--device", default="cpu", choices=DEVICES)
    p.set_defaults(func=cmd_translate)
    p = sub.add_parser("upscale", help="x4 super-resolution of 7x7 digits with an srresnet/srgan checkpoint",
                       description="Upscale INPUT.npy, digits (N, 7, 7) or (N, 1, 7, 7) in [0, 1] (e.g. 4x4 block "
                                   "means of MNIST), to 28x28: -o OUT.npy gets (N, 28, 28); -o OUT.png a grid of "
                                   "low-res, upscaled pairs.")
    p.add_argument("checkpoint")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--device", default="cpu", choices=DEVICES)
    p.set_defaults(func=cmd_upscale)
