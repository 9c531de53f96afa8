"""GAN training around the core library: objectives, trainer, recipes, checkpoints, runs."""
from .checkpoint import Checkpoint, CheckpointError, save_checkpoint
from .objectives import G_LOSSES, HEADS, d_accuracy, d_correct, d_targets, g_loss, get_head
from .recipes import RECIPES, Recipe, Setup, get_recipe
from .trainer import DivergenceError, GANConfig, GANTrainer

__all__ = ["Checkpoint", "CheckpointError", "save_checkpoint", "G_LOSSES", "HEADS", "d_accuracy", "d_correct",
           "d_targets", "g_loss", "get_head", "RECIPES", "Recipe", "Setup", "get_recipe", "DivergenceError",
           "GANConfig", "GANTrainer"]
