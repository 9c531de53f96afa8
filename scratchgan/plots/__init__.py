"""Figures and files a GAN run writes, one module per concern:

- ``images``: sample grids, per-epoch progress rows and GIFs, labelled strips, side-by-side
  panels (PNG/GIF files, captions and labels drawn with Pillow);
- ``curves``: loss, D-output and D-accuracy plots, panels of curves, the moving average
  (matplotlib, never pyplot);
- ``quiz``: the spot-the-fake quiz and its answer key;
- ``history``: the per-step history CSV, written and read back exactly.

Images are floats in [0, 1] laid out as (N, H, W), (N, C, H, W) with C in {1, 3}, or flat
(N, H*W) with ``shape=(H, W)``, NumPy or CuPy. Every file is written atomically: a failed
save leaves any old file untouched and no partial one. The public names are re-exported
here, so ``from scratchgan import plots; plots.save_grid(...)`` works.
"""
from . import curves, history, images, quiz
from .curves import moving_average, save_accuracy_plot, save_curve_panels, save_d_outputs_plot, save_loss_plot
from .history import read_history_csv, write_history_csv
from .images import image_grid, save_grid, save_image_strips, save_progress, save_progress_gif, save_side_by_side
from .quiz import save_spot_the_fake, spot_the_fake
from .curves import loss_per_epoch, save_loss_vs_frechet, tracked_loss   # Wasserstein GANs (issue 17)

__all__ = [*images.__all__, *curves.__all__, *quiz.__all__, *history.__all__]
