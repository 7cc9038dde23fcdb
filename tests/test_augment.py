"""Tests for emotion.augment: shapes, determinism and the geometry of the one warp.

Speed is measured by hand (see the report), not asserted here: timing tests are flaky on
shared CI machines.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from emotion.augment import AugmentConfig, affine_matrices, augment_batch

# Everything off: the pipeline must then be the identity, which checks the plumbing.
OFF = AugmentConfig(flip_p=0.0, max_shift=0.0, max_rotation=0.0, scale_range=(1.0, 1.0),
                    brightness=0.0, contrast=0.0, erase_p=0.0,
                     gamma_p=0.0, blur_p=0.0, jpeg_p=0.0)


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8)


def test_output_dtype_shape_and_input_untouched(images):
    before = images.copy()
    out = augment_batch(images, np.random.default_rng(1))
    assert out.dtype == np.uint8 and out.shape == images.shape
    assert out is not images
    np.testing.assert_array_equal(images, before)
    assert not np.array_equal(out, images)


def test_same_seed_same_output_different_seed_different_output(images):
    a = augment_batch(images, np.random.default_rng(42))
    b = augment_batch(images, np.random.default_rng(42))
    c = augment_batch(images, np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_disabled_and_zero_strength_configs_are_the_identity(images):
    np.testing.assert_array_equal(
        augment_batch(images, np.random.default_rng(0), AugmentConfig.none()), images)
    np.testing.assert_array_equal(augment_batch(images, np.random.default_rng(0), OFF), images)


def test_flip_alone_mirrors_exactly(images):
    flip = replace(OFF, flip_p=1.0)
    out = augment_batch(images, np.random.default_rng(0), flip)
    np.testing.assert_array_equal(out, images[:, :, ::-1])


def test_matrices_match_cv2_rotation_matrix():
    config = AugmentConfig(flip_p=0.0, max_shift=0.0)
    m = affine_matrices(5, 48, 48, np.random.default_rng(3), config)
    # Replay the draws in affine_matrices' order: flip, angle, scale.
    rng = np.random.default_rng(3)
    rng.random(5)
    angle = rng.uniform(-config.max_rotation, config.max_rotation, 5)
    scale = rng.uniform(*config.scale_range, 5)
    for i in range(5):
        expected = cv2.getRotationMatrix2D((23.5, 23.5), angle[i], scale[i])
        np.testing.assert_allclose(m[i], expected, atol=1e-12)


def test_erasing_alone_changes_one_rectangle(images):
    erase = replace(OFF, erase_p=1.0, erase_area=(0.05, 0.1))
    out = augment_batch(images, np.random.default_rng(0), erase)
    for before, after in zip(images, out):
        ys, xs = np.nonzero(before != after)
        assert len(ys) > 0
        box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert box <= 0.1 * 48 * 48 + 48  # within the largest area (plus rounding)


def test_rejects_non_uint8_input(images):
    with pytest.raises(ValueError, match="uint8"):
        augment_batch(images.astype(np.float32), np.random.default_rng(0))


def test_photo_faults_each_do_what_they_say(images):
    ramp = np.tile(np.arange(0, 256, 256 // 48, dtype=np.uint8)[:48], (4, 48, 1))
    dark = augment_batch(ramp, np.random.default_rng(0),
                         replace(OFF, gamma_p=1.0, gamma_range=(1.5, 1.5)))
    assert np.all(dark <= ramp) and np.all(np.diff(dark.astype(int), axis=2) >= 0)
    assert dark.mean() < ramp.mean() - 10
    blurred = augment_batch(images, np.random.default_rng(0),
                            replace(OFF, blur_p=1.0, blur_sigma=(1.0, 1.0)))
    assert blurred.astype(float).std() < 0.7 * images.astype(float).std()
    smooth = cv2.GaussianBlur(images[0], (0, 0), 3)[None].repeat(4, 0)
    jpeg = augment_batch(smooth, np.random.default_rng(0),
                         replace(OFF, jpeg_p=1.0, jpeg_quality=(20, 20)))
    assert not np.array_equal(jpeg, smooth)
    assert np.abs(jpeg.astype(int) - smooth).mean() < 8


def test_photo_preset_adds_the_faults_the_default_recipe_leaves_off():
    default, photo = AugmentConfig(), AugmentConfig.photo()
    assert default.gamma_p == default.blur_p == default.jpeg_p == 0.0
    assert min(photo.gamma_p, photo.blur_p, photo.jpeg_p) > 0 and photo.max_rotation == 15.0
    assert replace(photo, max_rotation=default.max_rotation, gamma_p=0.0, blur_p=0.0,
                   jpeg_p=0.0) == default


def test_default_recipe_draws_what_it_drew_before_the_photo_faults(images):
    """The photo faults draw from the generator only when on, so a seed trains as before:
    the default recipe makes exactly the draws it made before they existed."""
    class Recorder:
        def __init__(self):
            self.rng, self.calls = np.random.default_rng(5), []

        def __getattr__(self, name):
            def draw(*args, **kwargs):
                self.calls.append(name)
                return getattr(self.rng, name)(*args, **kwargs)
            return draw

    default, photo = Recorder(), Recorder()
    out = augment_batch(images, default)
    augment_batch(images, photo, AugmentConfig.photo())
    before = ["random", "uniform", "uniform", "uniform",  # flip, angle, scale, shift
              "uniform", "uniform",                       # contrast, brightness
              "random", "uniform", "uniform", "random", "random"]  # erasing
    fills = default.calls[len(before):]
    assert default.calls[:len(before)] == before and set(fills) <= {"integers"}
    assert photo.calls[len(before):len(before) + 6] == ["random", "uniform", "random",
                                                        "uniform", "random", "integers"]
    assert out.shape == images.shape


def test_random_windows_are_windows_of_each_image_at_drawn_positions(images):
    from emotion.augment import random_windows

    out = random_windows(images, 40, np.random.default_rng(3))
    assert out.shape == (16, 40, 40) and out.dtype == np.uint8
    positions = set()
    for img, win in zip(images, out):
        found = [(y, x) for y in range(9) for x in range(9)
                 if np.array_equal(img[y:y + 40, x:x + 40], win)]
        assert found, "a window that is not a part of its image"
        positions.add(found[0])
    assert len(positions) > 4  # drawn, not one fixed place
    again = random_windows(images, 40, np.random.default_rng(3))
    assert np.array_equal(out, again)
    assert np.array_equal(random_windows(images, 48, np.random.default_rng(0)), images)
    with pytest.raises(ValueError, match="49x49 window does not fit in 48x48"):
        random_windows(images, 49, np.random.default_rng(0))
