# The PyTorch reference of the benchmark's two workloads, shipped with scratchgan so that
# `scratchgan bench --compare-torch PYTHON` needs nothing outside the package. Copied byte for
# byte from the benchmark specification (its bench/torch_reference.py, which sits beside the
# bench/SPEC.md mentioned below); only this comment is added. docs/performance.md ("What is
# measured") describes the workloads. Run by `scratchgan bench` in a separate interpreter that
# has PyTorch; never imported by scratchgan itself.
"""PyTorch reference timings for the two benchmark workloads in SPEC.md (same folder).

Run it beside the project's own benchmark, back to back on the same machine, and compare ratios:
    python torch_reference.py --device cpu --steps 20
Needs only PyTorch (a CPU build is enough:  pip install torch  in a separate venv).
Prints one line per workload: name, device, batch, median and min milliseconds per step.
"""
import argparse, json, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp(dev):
    """Tutorial GAN on binarized digits: G z28 -> 500 tanh -> 784 sigmoid; D 784 -> 500 tanh -> 2 (softmax)."""
    G = nn.Sequential(nn.Linear(28, 500), nn.Tanh(), nn.Linear(500, 784), nn.Sigmoid())
    D = nn.Sequential(nn.Linear(784, 500), nn.Tanh(), nn.Linear(500, 2))
    real = (torch.rand(200, 784, device=dev) > 0.5).float()
    noise = lambda: torch.randn(200, 28, device=dev)
    def d_loss(out, is_real):  # softmax head, unit 0 = "real"
        return F.cross_entropy(out, torch.full((out.shape[0],), 0 if is_real else 1, device=dev))
    return G, D, real, noise, d_loss, dict(lr=1e-3, betas=(0.9, 0.999))


def dcgan(dev):
    """DCGAN-28: see SPEC.md for the layer list."""
    G = nn.Sequential(nn.ConvTranspose2d(100, 256, 7, 1, 0, bias=False), nn.BatchNorm2d(256), nn.ReLU(),
                      nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
                      nn.ConvTranspose2d(128, 1, 4, 2, 1, bias=False), nn.Tanh())
    D = nn.Sequential(nn.Conv2d(1, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                      nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
                      nn.Conv2d(128, 1, 7, 1, 0, bias=False), nn.Flatten())
    real = torch.rand(128, 1, 28, 28, device=dev) * 2 - 1
    noise = lambda: torch.randn(128, 100, 1, 1, device=dev)
    def d_loss(out, is_real):
        return F.binary_cross_entropy_with_logits(out.view(-1), torch.full((out.shape[0],), float(is_real), device=dev))
    return G, D, real, noise, d_loss, dict(lr=2e-4, betas=(0.5, 0.999))


def bench(name, make, dev, steps):
    torch.manual_seed(0)
    G, D, real, noise, d_loss, adam = make(dev)
    G.to(dev), D.to(dev)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), **adam), torch.optim.Adam(D.parameters(), **adam)

    def step():  # one D update on real + fake, then one G update (non-saturating), fake batch reused
        fake = G(noise())
        opt_d.zero_grad()
        (d_loss(D(real), True) + d_loss(D(fake.detach()), False)).backward()
        opt_d.step()
        opt_g.zero_grad()
        d_loss(D(fake), True).backward()
        opt_g.step()

    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    for _ in range(3):
        step()
    sync()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - t) * 1e3)
    return dict(workload=name, device=dev, batch=real.shape[0],
                median_ms=round(statistics.median(times), 3), min_ms=round(min(times), 3))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    args = ap.parse_args()
    for name, make in (("mlp", mlp), ("dcgan", dcgan)):
        r = bench(name, make, args.device, args.steps)
        print(json.dumps(r) if args.json else
              f"{r['workload']:6s} {r['device']:4s} batch={r['batch']:4d} median_ms={r['median_ms']:.2f} min_ms={r['min_ms']:.2f}")
