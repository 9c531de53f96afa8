"""Generator/discriminator domination, and why the minimax loss starves G of gradient.

Trains the same recipe three ways, and the WGAN-GP critic of the same architecture a fourth,
and records, per step, D(x), D(G(z)) and the norm of the generator's weight gradients, layer by layer:

    balanced          the recipe as published, non-saturating G loss
    D wins, NS        D's learning rate x10: D quickly rejects every fake; non-saturating loss
    D wins, MM        the same strong D with the original minimax loss, log(1 - D(G(z)))
    WGAN-GP critic    the wgan-gp recipe on the same models (no sigmoid; arch = --recipe), its
                      critic's learning rate x10 and 5 critic steps per G step: far ahead too

With D(G(z)) -> 0, the minimax loss is flat (d/dD log(1 - D) = -1 / (1 - D) ~ -1, and
through the sigmoid dD/dlogit = D(1 - D) ~ D -> 0), so G's gradients vanish; the
non-saturating -log D(G(z)) has gradient -1/D, which cancels that D and keeps them alive.
A critic has no sigmoid to saturate: G's loss is -mean D(G(z)), whose gradient is the critic's
own slope, kept near 1 by the gradient penalty however far ahead the critic is. Its D(x) and
D(G(z)) are raw scores, not probabilities, so they get their own panel (the Wasserstein
estimate, mean D(x) - mean D(G(z))); gradient norms are plotted per generator update.
Writes domination.png and domination.json into --out.

    python demos/domination.py --data-dir ~/data/mnist --epochs 1 --out runs/domination
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from scratchgan import backend, plots
from scratchgan.cli import positive_int, run_command
from scratchgan.data import load_images
from scratchgan.gan.recipes import get_recipe
from scratchgan.gan.run import train_run

RUNS = {"balanced": {}, "D wins, NS": {"d_lr_factor": 10}, "D wins, MM": {"d_lr_factor": 10, "loss": "minimax"},
        "WGAN-GP critic": {"d_lr_factor": 10, "recipe": "wgan-gp"}}


class GradientNorms:
    """Callback: after each generator update, the norm of each G layer's weight gradient."""

    def __init__(self):
        self.norms, self._seen = {}, 0

    def __call__(self, trainer):
        if trainer.g_steps == self._seen:
            return
        self._seen = trainer.g_steps
        for name, layer, key in trainer.G.named_parameters():
            if key == "weight" and layer.params[key].ndim > 1:
                norm = float(backend.get_xp(layer.grads[key]).linalg.norm(layer.grads[key]))
                self.norms.setdefault(f"G layer {name.split('.')[0]}", []).append(norm)


def run(name, settings, recipe, images, out, epochs, device, seed, batch_size=None):
    options = {"seed": seed, "batch_size": batch_size}
    if "recipe" in settings:   # the Wasserstein critic on the same architecture
        options["arch"], recipe = recipe, settings["recipe"]
    defaults = get_recipe(recipe).defaults
    if "d_lr_factor" in settings:
        key = "d_lr" if "d_lr" in defaults else "lr"
        options[key] = defaults["lr"] * settings["d_lr_factor"]
    if "loss" in settings:
        options["loss"] = settings["loss"]
    norms = GradientNorms()
    run_dir = out / name.replace(" ", "_").replace(",", "")
    trainer = train_run(recipe, run_dir, images, epochs=epochs, device=device, callback=norms, quiet=False,
                        final_outputs=False, **options)
    return trainer.history, norms.norms


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="dcgan", choices=("dcgan", "mlp"))
    parser.add_argument("--data-dir")
    parser.add_argument("--epochs", type=positive_int, default=1)
    parser.add_argument("--limit", type=positive_int, default=None, help="train on the first N images only")
    parser.add_argument("--device", default="cpu", choices=backend.DEVICES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/domination")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="default: the recipe's")
    args = parser.parse_args()
    out = Path(args.out)
    images = load_images("mnist", data_dir=args.data_dir)[:args.limit]
    panels = {"D(x)": {}, "D(G(z))": {}, "G gradient norm, first layer (per G update)": {},
              "G gradient norm, last layer (per G update)": {}, "critic: Wasserstein estimate": {}}
    summary = {}
    for name, settings in RUNS.items():
        history, norms = run(name, settings, args.recipe, images, out, args.epochs, args.device, args.seed,
                             args.batch_size)
        layers = list(norms)
        if "wasserstein" in history:    # raw critic scores: not on the probability panels
            panels["critic: Wasserstein estimate"][name] = history["wasserstein"]
        else:
            panels["D(x)"][name] = history["d_real"]
            panels["D(G(z))"][name] = history["d_fake"]
        panels["G gradient norm, first layer (per G update)"][name] = norms[layers[0]]
        panels["G gradient norm, last layer (per G update)"][name] = norms[layers[-1]]
        tail = slice(-max(1, len(history["d_fake"]) // 4), None)  # the last quarter of training
        g_tail = slice(-max(1, len(norms[layers[0]]) // 4), None)
        summary[name] = {"d_real": float(np.mean(history["d_real"][tail])),
                         "d_fake": float(np.mean(history["d_fake"][tail])),
                         **{f"grad_norm {k}": float(np.mean(v[g_tail])) for k, v in norms.items()}}
        print(name, json.dumps(summary[name]))
    plots.save_curve_panels(out / "domination.png", panels, smooth=10,
                            log_panels=("G gradient norm, first layer (per G update)",
                                        "G gradient norm, last layer (per G update)"),
                            title=f"{args.recipe}: balanced vs a dominating discriminator (and a critic)",
                            xlabel="step: D steps (D panels), G updates (gradient panels)")
    (out / "domination.json").write_text(json.dumps(summary, indent=2))
    print(f"domination.png and domination.json in {out}/")


if __name__ == "__main__":
    sys.exit(run_command("domination.py", main))
