"""Full-reference image quality: PSNR and SSIM (Wang et al. 2004), and bicubic upscaling as the baseline.

Images are floats in [0, 1] shaped (N, H, W) or (N, C, H, W) (NumPy); every function returns
one number per image, computed in float64.
"""
import numpy as np
from PIL import Image

SSIM_SIGMA = 1.5          # Wang et al.: an 11 x 11 circular-symmetric Gaussian window, sigma 1.5
SSIM_RADIUS = 5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _as_nchw64(images, name):
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"{name}: expected images (N, H, W) or (N, C, H, W), got shape {np.shape(images)}")
    return x


def _pair(images, reference):
    x, y = _as_nchw64(images, "images"), _as_nchw64(reference, "reference")
    if x.shape != y.shape:
        raise ValueError(f"images {x.shape} and reference {y.shape} differ in shape")
    return x, y


def psnr(images, reference, data_range=1.0):
    """Peak signal-to-noise ratio per image, 10 log10(range^2 / MSE) in dB (inf for identical images)."""
    x, y = _pair(images, reference)
    mse = ((x - y) ** 2).reshape(len(x), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(data_range ** 2 / mse)


def gaussian_window(sigma=SSIM_SIGMA, radius=SSIM_RADIUS):
    """The 1-D Gaussian of the SSIM window (normalized to sum 1); the 2-D window is its outer product."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-t ** 2 / (2 * sigma ** 2))
    return w / w.sum()


def _filter_valid(x, w):
    """Correlate the last two axes of x with the separable window w x w, keeping only full windows."""
    k = len(w)
    rows = sum(w[i] * x[..., i:x.shape[-2] - k + 1 + i, :] for i in range(k))
    return sum(w[j] * rows[..., j:rows.shape[-1] - k + 1 + j] for j in range(k))


def ssim(images, reference, data_range=1.0, sigma=SSIM_SIGMA, radius=SSIM_RADIUS):
    """Structural similarity per image (Wang, Bovik, Sheikh & Simoncelli 2004), mean over channels.

    Local statistics under a Gaussian window g (11 x 11, sigma 1.5), at every position where it
    fits inside the image:

        mu_x = g * x,   sigma_x^2 = g * x^2 - mu_x^2,   sigma_xy = g * (x y) - mu_x mu_y
        SSIM map = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))

    with C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = ``data_range``; the image's SSIM is the mean of its
    map. (skimage's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)`` computes the same numbers.)
    """
    x, y = _pair(images, reference)
    if min(x.shape[2:]) < 2 * radius + 1:
        raise ValueError(f"ssim: images of {x.shape[2]}x{x.shape[3]} are smaller than the {2 * radius + 1}-pixel window")
    w = gaussian_window(sigma, radius)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x, w), _filter_valid(y, w)
    var_x = _filter_valid(x * x, w) - mu_x ** 2
    var_y = _filter_valid(y * y, w) - mu_y ** 2
    cov = _filter_valid(x * y, w) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return ssim_map.reshape(len(x), -1).mean(axis=1)


def block_mean(images, factor):
    """Downscale by averaging each factor x factor block: (N, C, H, W) -> (N, C, H / factor, W / factor)."""
    n, c, h, w = images.shape
    if h % factor or w % factor:
        raise ValueError(f"block_mean: image size {h}x{w} is not a multiple of {factor}")
    return images.reshape(n, c, h // factor, factor, w // factor, factor).mean(axis=(3, 5))


def bicubic_upscale(images, factor):
    """Upscale (N, C, h, w) floats by ``factor`` with Pillow's bicubic filter, clipped to [0, 1] (float32)."""
    x = _as_nchw64(images, "images")
    n, c, h, w = x.shape
    bicubic = getattr(Image, "Resampling", Image).BICUBIC
    out = np.empty((n, c, h * factor, w * factor), np.float32)
    for i in range(n):
        for j in range(c):
            plane = Image.fromarray(x[i, j].astype(np.float32), mode="F")
            out[i, j] = np.asarray(plane.resize((w * factor, h * factor), bicubic))
    return out.clip(0, 1)
