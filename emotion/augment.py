"""Training-time augmentation of 48x48 grayscale faces with OpenCV and NumPy.

Each image gets, in this order:

1. one ``cv2.warpAffine`` that combines a horizontal flip, a small rotation, a scale and a
   shift (composing them into one 2x3 matrix means one interpolation, so one blur, instead
   of four);
2. brightness and contrast jitter;
3. random erasing (Zhong et al., 2017, "Random Erasing Data Augmentation"): a rectangle
   filled with noise, which pushes the model to use more than one facial region;
4. optionally (``AugmentConfig.photo()``, off in the default recipe), the faults of real
   photos that FER2013's crops rarely show: a gamma curve (over- and under-exposure), a
   Gaussian blur (focus and motion) and JPEG re-compression (blocking and ringing), each
   with its own probability.

All randomness comes from the ``np.random.Generator`` passed in, and every random number for
a batch is drawn up front in a fixed order, so a seed reproduces a batch exactly. The cost is
a few microseconds per image; a 128-image batch takes a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths. ``AugmentConfig.none()`` turns everything off.

    Attributes
    ----------
    enabled : False returns a copy of the input unchanged.
    flip_p : probability of a horizontal flip (faces are roughly left-right symmetric).
    max_shift : largest shift in pixels along x and y, drawn uniformly in [-max_shift, max_shift].
    max_rotation : largest rotation in degrees, drawn uniformly in [-max_rotation, max_rotation].
    scale_range : (low, high) zoom factor drawn uniformly; >1 zooms in.
    border_mode : how the warp fills pixels from outside the image; reflecting keeps face-like
        texture at the border instead of black wedges the model could learn to look for.
    brightness : largest brightness offset as a fraction of 255.
    contrast : largest relative contrast change; the factor is drawn in [1-c, 1+c] and applied
        around each image's mean.
    erase_p : probability of erasing one rectangle.
    erase_area : (low, high) fraction of the image the rectangle covers.
    erase_aspect : (low, high) height/width ratio of the rectangle, drawn log-uniformly.
    gamma_p, gamma_range : probability of a gamma curve ``255 (x / 255) ** g`` and the
        (low, high) range of g, drawn log-uniformly (g < 1 brightens shadows).
    blur_p, blur_sigma : probability of a Gaussian blur and the (low, high) range of its
        sigma in pixels.
    jpeg_p, jpeg_quality : probability of a JPEG encode and decode, and the (low, high)
        range of its quality (OpenCV's 0-100 scale).
    """

    enabled: bool = True
    flip_p: float = 0.5
    max_shift: float = 4.0
    max_rotation: float = 10.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    border_mode: int = cv2.BORDER_REFLECT_101
    brightness: float = 0.15
    contrast: float = 0.25
    erase_p: float = 0.25
    erase_area: tuple[float, float] = (0.02, 0.15)
    erase_aspect: tuple[float, float] = (0.3, 3.3)
    gamma_p: float = 0.0
    gamma_range: tuple[float, float] = (0.6, 1.6)
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.4, 1.2)
    jpeg_p: float = 0.0
    jpeg_quality: tuple[int, int] = (20, 90)

    @classmethod
    def photo(cls) -> AugmentConfig:
        """The default strengths plus real-photo faults and up to 15 degrees of tilt."""
        return cls(max_rotation=15.0, gamma_p=0.3, blur_p=0.15, jpeg_p=0.25)

    @classmethod
    def none(cls) -> AugmentConfig:
        """A config that leaves images unchanged (for evaluation or ablations)."""
        return cls(enabled=False)


def affine_matrices(
    n: int, height: int, width: int, rng: np.random.Generator, config: AugmentConfig
) -> np.ndarray:
    """Draw n random flip+rotate+scale+shift transforms as cv2 2x3 matrices, float64 (n, 2, 3).

    Like cv2.getRotationMatrix2D, a matrix maps a source pixel (x, y) to its destination
    (x', y'); cv2.warpAffine inverts it internally. With the flip off and no shift, a matrix
    equals ``cv2.getRotationMatrix2D(centre, degrees, scale)``.
    """
    flip = rng.random(n) < config.flip_p
    angle = np.deg2rad(rng.uniform(-config.max_rotation, config.max_rotation, n))
    scale = rng.uniform(config.scale_range[0], config.scale_range[1], n)
    shift = rng.uniform(-config.max_shift, config.max_shift, (n, 2))

    # Rotation by +angle (counter-clockwise on screen, as cv2.getRotationMatrix2D) and scale
    # about the image centre c:  x' = A (x - c) + c + shift,  with A = s [[cos, sin], [-sin, cos]].
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    a, b = scale * np.cos(angle), scale * np.sin(angle)
    m = np.empty((n, 2, 3))
    m[:, 0, 0], m[:, 0, 1] = a, b
    m[:, 1, 0], m[:, 1, 1] = -b, a
    # A flip first maps x -> (width - 1) - x, which about the centre is diag(-1, 1), so the
    # flipped transform is A diag(-1, 1): A with its x column negated. The translation then
    # follows from the final 2x2 part: t = c - A' c + shift.
    m[flip, :, 0] *= -1.0
    m[:, 0, 2] = cx - (m[:, 0, 0] * cx + m[:, 0, 1] * cy) + shift[:, 0]
    m[:, 1, 2] = cy - (m[:, 1, 0] * cx + m[:, 1, 1] * cy) + shift[:, 1]
    return m


def augment_batch(
    images: np.ndarray, rng: np.random.Generator, config: AugmentConfig | None = None
) -> np.ndarray:
    """Augment a batch of grayscale images.

    Inputs
    ------
    images : uint8 (N, H, W), e.g. (N, 48, 48); not modified.
    rng : the only source of randomness; the same seed gives the same output.
    config : strengths; None means ``AugmentConfig()``.

    Returns
    -------
    uint8 (N, H, W), a new array.
    """
    config = AugmentConfig() if config is None else config
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"images must be uint8 (N, H, W), got {images.dtype} {images.shape}")
    if not config.enabled:
        return images.copy()
    n, height, width = images.shape

    # Draw everything first, in a fixed order, so that results do not depend on branches.
    matrices = affine_matrices(n, height, width, rng, config)
    contrast = rng.uniform(1.0 - config.contrast, 1.0 + config.contrast, n).astype(np.float32)
    brightness = (255.0 * rng.uniform(-config.brightness, config.brightness, n)).astype(
        np.float32
    )
    erase = rng.random(n) < config.erase_p
    area = rng.uniform(config.erase_area[0], config.erase_area[1], n) * (height * width)
    log_lo, log_hi = np.log(config.erase_aspect[0]), np.log(config.erase_aspect[1])
    aspect = np.exp(rng.uniform(log_lo, log_hi, n))
    erase_h = np.clip(np.rint(np.sqrt(area * aspect)), 1, height).astype(np.int64)
    erase_w = np.clip(np.rint(np.sqrt(area / aspect)), 1, width).astype(np.int64)
    erase_y = (rng.random(n) * (height - erase_h + 1)).astype(np.int64)
    erase_x = (rng.random(n) * (width - erase_w + 1)).astype(np.int64)
    # The photo faults draw only when switched on, so the default recipe's random stream
    # (and so a seed's result) is what it was before they existed.
    gamma_on = blur_on = jpeg_on = np.zeros(n, dtype=bool)
    if config.gamma_p or config.blur_p or config.jpeg_p:
        gamma_on = rng.random(n) < config.gamma_p
        gamma = np.exp(rng.uniform(np.log(config.gamma_range[0]), np.log(config.gamma_range[1]),
                                   n))
        blur_on = rng.random(n) < config.blur_p
        sigma = rng.uniform(config.blur_sigma[0], config.blur_sigma[1], n)
        jpeg_on = rng.random(n) < config.jpeg_p
        quality = rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1, n)

    warped = np.empty((n, height, width), dtype=np.float32)
    for i in range(n):
        warped[i] = cv2.warpAffine(
            images[i], matrices[i], (width, height),
            flags=cv2.INTER_LINEAR, borderMode=config.border_mode,
        )

    # Contrast around each image's own mean, so that a dark face stays dark.
    mean = warped.mean(axis=(1, 2), keepdims=True)
    out = (warped - mean) * contrast[:, None, None] + (mean + brightness[:, None, None])

    for i in np.flatnonzero(erase):
        y, x, h, w = erase_y[i], erase_x[i], erase_h[i], erase_w[i]
        out[i, y : y + h, x : x + w] = rng.integers(0, 256, (h, w))
    np.clip(out, 0.0, 255.0, out=out)
    for i in np.flatnonzero(gamma_on):
        out[i] = 255.0 * (out[i] / 255.0) ** gamma[i]
    for i in np.flatnonzero(blur_on):
        out[i] = cv2.GaussianBlur(out[i], (0, 0), sigmaX=float(sigma[i]))
    result = np.rint(out).astype(np.uint8)
    for i in np.flatnonzero(jpeg_on):
        ok, encoded = cv2.imencode(".jpg", result[i], [cv2.IMWRITE_JPEG_QUALITY, int(quality[i])])
        if ok:
            result[i] = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    return result


def random_windows(images: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random size x size window of each image, at a uniformly drawn position.

    The classic crop augmentation of FER2013 models; here it also makes a training step
    cheaper, since a 40x40 input costs about 0.84x a 48x48 one. Returns a new (N, size, size)
    array of the images' dtype.
    """
    n, height, width = images.shape
    if size > min(height, width):
        raise ValueError(f"a {size}x{size} window does not fit in {height}x{width} images")
    ys = rng.integers(0, height - size + 1, n)
    xs = rng.integers(0, width - size + 1, n)
    out = np.empty((n, size, size), dtype=images.dtype)
    for i in range(n):
        out[i] = images[i, ys[i]:ys[i] + size, xs[i]:xs[i] + size]
    return out
