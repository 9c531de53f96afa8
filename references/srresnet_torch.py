"""The srresnet recipe in PyTorch: the same SRResNet, data, batches, initial weights and Adam, trained in torch.

This is the reference the srresnet recipe is compared with (docs/image_to_image.md). It is not
part of the package; it imports scratchgan for the data pipeline (block means of MNIST, the same
seeded BatchLoader order) and the initial weights (built by scratchgan after ``manual_seed(seed)``,
exactly as ``scratchgan train srresnet`` builds them), so the two runs differ only in the
arithmetic of the training itself. PyTorch is imported lazily and optional for scratchgan.

    python references/srresnet_torch.py --data-dir DIR/mnist --out runs/srresnet_torch [--epochs 5]

writes OUT/checkpoint.npz (the trained weights in a scratchgan checkpoint, so that
``scratchgan evaluate`` and ``scratchgan upscale`` read them), OUT/upscaled.npy (torch's own
outputs for the 10,000 test digits, (N, 28, 28) in [0, 1]) and OUT/summary.json (PSNR, SSIM and
accuracy of those outputs, wall time).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's scratchgan

from scratchgan import backend  # noqa: E402
from scratchgan.data import BatchLoader, load_dataset, transforms  # noqa: E402
from scratchgan.gan.recipes import get_recipe  # noqa: E402
from scratchgan.gan.srgan import downscale  # noqa: E402


def torch_srresnet(n_blocks, width, channels=1):
    """SRResNet in torch, module names matching scratchgan's Chain/Residual state-dict keys."""
    import torch.nn as nn

    class Residual(nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            return x + self.body(x)

    c = width

    def block():
        return Residual(nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.PReLU(c),
                                      nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)))

    def upsample():
        return [nn.Conv2d(c, 4 * c, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(c)]

    trunk = Residual(nn.Sequential(*[block() for _ in range(n_blocks)], nn.Conv2d(c, c, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(c)))
    return nn.Sequential(nn.Conv2d(channels, c, 9, padding=4), nn.PReLU(c), trunk, *upsample(), *upsample(),
                         nn.Conv2d(c, channels, 9, padding=4), nn.Tanh())


def from_scratchgan(net, G, dtype):
    """Copy scratchgan G's parameters and buffers into the torch net (same keys and layouts)."""
    import torch
    state = {k: torch.as_tensor(np.asarray(v)) for k, v in G.state_dict().items()}
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    net.load_state_dict(state)
    return net.to(dtype)


def to_scratchgan_state(net):
    return {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}


def train_step(net, optimizer, low, high):
    """One step of the srresnet recipe: MSE of net(low) against high (both in [-1, 1]), Adam."""
    import torch.nn.functional as F
    optimizer.zero_grad()
    loss = F.mse_loss(net(low), high)
    loss.backward()
    optimizer.step()
    return loss


def main(argv=None):
    import torch
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipe = get_recipe("srresnet")
    o = recipe.options(epochs=args.epochs)
    images, _ = load_dataset("mnist", "train", data_dir=args.data_dir)
    backend.manual_seed(o["seed"])                               # as scratchgan train builds the recipe
    setup = recipe.setup(o, (1, 28, 28))
    net = from_scratchgan(torch_srresnet(o["n_blocks"], o["width"]), setup.G, torch.float32)
    optimizer = torch.optim.Adam(net.parameters(), lr=o["lr"], betas=(o["beta1"], 0.999), eps=1e-8)
    high = transforms.to_tanh_range(images[:, None])
    loader = BatchLoader((downscale(high), high), o["batch_size"], shuffle=True, drop_last=True, seed=o["seed"])
    started, losses = time.perf_counter(), []
    net.train()
    for epoch in range(o["epochs"]):
        for low, hr in loader:
            losses.append(float(train_step(net, optimizer, torch.as_tensor(low), torch.as_tensor(hr))))
        print(f"epoch {epoch + 1}/{o['epochs']}: mean MSE {np.mean(losses[-len(loader):]):.5f}", flush=True)
    seconds = time.perf_counter() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net.eval()
    test, labels = load_dataset("mnist", "test", data_dir=args.data_dir)
    test = transforms.to_float(test[:, None])
    with torch.no_grad():
        low = torch.as_tensor(downscale(test) * 2 - 1)
        upscaled = np.concatenate([((net(low[i:i + 500]) + 1) / 2).clamp(0, 1).numpy() for i in range(0, len(low), 500)])
    np.save(out / "upscaled.npy", upscaled[:, 0])
    meta = {"format": 1, "recipe": "srresnet", "options": o, "image_shape": [1, 28, 28], "epoch": o["epochs"],
            "dataset": "mnist", "device": "cpu (PyTorch)", "trainer": {"d_steps": len(losses)},
            "reference": f"references/srresnet_torch.py, torch {torch.__version__}, {args.threads} thread(s)"}
    arrays = {f"G/{k}": v for k, v in to_scratchgan_state(net).items()}
    np.savez(out / "checkpoint.npz", meta=np.array(json.dumps(meta)), **arrays)
    from scratchgan.gan.srgan import evaluate_upscaler
    row = evaluate_upscaler(lambda _: upscaled, test, labels, name="srresnet (PyTorch)")
    summary = {**row, "train_seconds": round(seconds, 1), "steps": len(losses), "final_mse": losses[-1],
               "torch": torch.__version__, "threads": args.threads}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
