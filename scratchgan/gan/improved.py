"""``mlp-improved``: the tutorial's MLP GAN on binarized MNIST with the fixes that work (docs/dynamics.md).

Same generator and discriminator as ``mlp`` (recipes.py), trained with what the search recorded
in docs/dynamics.md chose from Salimans et al. 2016's fixes (gan/fixes.py; they are options, so
any of them can be switched off or tuned from the command line) and Adam with its own beta1.
"""
from ..optim import Adam
from .recipes import MLP, Recipe, build_mlp

#: the fixes and training settings chosen by the search recorded in docs/dynamics.md (mlp-improved): minibatch
#: discrimination (50 kernels of dimension 5), feature matching added to the usual G loss with weight 0.3,
#: one-sided label smoothing 0.1, dropout 0.3 in D, batches of 100 and Adam with beta1 0.5
IMPROVED = {"minibatch_kernels": 50, "minibatch_kernel_dim": 5, "feature_matching": 0.3, "label_smoothing": 0.1,
            "dropout": 0.3, "batch_size": 100, "beta1": 0.5, "d_lr": None}


def build_mlp_improved(o, image_shape):
    """``mlp``'s models; Adam with betas (beta1, 0.999), D's learning rate ``d_lr`` if set. The fixes in the
    options are applied by Recipe.setup (fixes.improve)."""
    setup = build_mlp(o, image_shape)
    betas = (o["beta1"], 0.999)
    setup.opt_g = Adam(setup.G, lr=o["lr"], betas=betas)
    setup.opt_d = Adam(setup.D, lr=o["d_lr"] or o["lr"], betas=betas)
    return setup


MLP_IMPROVED = Recipe("mlp-improved", "the tutorial MLP with minibatch discrimination, feature matching, one-sided "
                                      "label smoothing, dropout in D, batches of 100 and Adam(beta1 0.5) "
                                      "(docs/dynamics.md)",
                      {**MLP.defaults, **IMPROVED}, build_mlp_improved)
