"""The GAN dynamics lab (docs/dynamics.md): Dirac-GAN, a real network's spectrum, mode collapse and its fixes."""
