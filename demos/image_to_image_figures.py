"""The figures and tables of docs/image_to_image.md, from trained runs.

    python demos/image_to_image_figures.py --data-dir DIR --out docs/figures \
        --srresnet runs/srresnet --srgan runs/srgan [--torch runs/srresnet_torch] [--cyclegan runs/cyclegan32]

DIR holds mnist/ and emoji/ (as $SCRATCHGAN_DATA does). Writes into --out:

    sr_comparison.png   12 test digits, one row each: low-res (4x4 block means), bicubic, SRResNet, SRGAN, original
    sr_table.json/.md   PSNR, SSIM and classifier accuracy on the 10,000 test digits, each method
    cyclegan_*.png      the run's held-out translations, loss curves and held-out L1 per epoch (copied)
    cyclegan_table.md   the translation evaluation of the run's checkpoint (scratchgan evaluate)
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from scratchgan import plots
from scratchgan.cli import run_command
from scratchgan.evaluation import load_classifier
from scratchgan.evaluation.image_quality import bicubic_upscale
from scratchgan.gan.srgan import (SCALE, SuperResolutionEvaluator, bicubic_row, downscale, evaluate_upscaler,
                                  format_quality_table, nearest_upscale, upscale_images)
from scratchgan.gan.translate import CYCLEGAN_RECIPES, SR_RECIPES, load_image_to_image

N_SHOWN = 12


def super_resolution(args, out):
    data = SuperResolutionEvaluator(str(Path(args.data_dir) / "mnist"))
    classifier = load_classifier(dataset="mnist")
    runs = {"SRResNet": args.srresnet, "SRGAN": args.srgan, "SRResNet (PyTorch)": args.torch}
    nets = {name: load_image_to_image(Path(run) / "checkpoint.npz", SR_RECIPES)[0] for name, run in runs.items() if run}
    rows = [bicubic_row(data.images, data.labels, classifier)]
    for name, net in nets.items():
        rows.append(evaluate_upscaler(lambda low, net=net: upscale_images(net, low), data.images, data.labels,
                                      classifier, name))
    (out / "sr_table.json").write_text(json.dumps(rows, indent=2))
    (out / "sr_table.md").write_text(format_quality_table(rows) + "\n")
    print(format_quality_table(rows))
    shown = data.images[np.linspace(0, len(data.images) - 1, N_SHOWN).astype(int)]
    low = downscale(shown)
    columns = {"low-res (7x7)": nearest_upscale(low), "bicubic": bicubic_upscale(low, SCALE)}
    columns.update({name: upscale_images(net, low) for name, net in nets.items() if "PyTorch" not in name})
    columns["original"] = shown
    plots.save_image_strips(out / "sr_comparison.png", list(columns.values()), labels=list(columns), scale=3)


def cyclegan(args, out):
    from scratchgan.gan.cyclegan import HeldOut
    from scratchgan.gan.cyclegan_eval import format_translation_table
    run = Path(args.cyclegan)
    for name in ("translations.png", "losses.png", "heldout.png", "progress.png"):
        if (run / name).is_file():
            shutil.copyfile(run / name, out / f"cyclegan_{name}")
    checkpoint = run / "checkpoint.npz"
    G, ckpt = load_image_to_image(checkpoint, CYCLEGAN_RECIPES, "G")
    F, _ = load_image_to_image(checkpoint, CYCLEGAN_RECIPES, "F")
    heldout = HeldOut.load(ckpt.meta["options"], args.data_dir, ckpt.meta["image_shape"][1], quiet=True)
    row = heldout.final(G, F, "cpu")
    (out / "cyclegan_table.json").write_text(json.dumps(row, indent=2))
    (out / "cyclegan_table.md").write_text(format_translation_table(row) + "\n")
    print(format_translation_table(row))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder holding mnist/ and emoji/")
    parser.add_argument("--out", default="docs/figures")
    parser.add_argument("--srresnet")
    parser.add_argument("--srgan")
    parser.add_argument("--torch", help="the run directory of references/srresnet_torch.py")
    parser.add_argument("--cyclegan")
    args = parser.parse_args(argv)

    def work(args):
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        if args.srresnet or args.srgan:
            super_resolution(args, out)
        if args.cyclegan:
            cyclegan(args, out)
        return 0
    return run_command("image_to_image_figures", work, args)


if __name__ == "__main__":
    sys.exit(main())
