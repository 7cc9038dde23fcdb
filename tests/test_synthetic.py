"""Tests for emotion.synthetic: shapes, balance, determinism, and that classes differ."""

from __future__ import annotations

import numpy as np
import pytest

from emotion.data import Dataset, class_counts
from emotion.labels import NUM_CLASSES
from emotion.synthetic import make_synthetic, synthetic_splits


def test_shapes_labels_and_balance():
    images, labels = make_synthetic(5, rng=0)
    assert images.shape == (5 * NUM_CLASSES, 48, 48) and images.dtype == np.uint8
    assert labels.shape == (5 * NUM_CLASSES,) and labels.dtype == np.int64
    np.testing.assert_array_equal(class_counts(labels), np.full(NUM_CLASSES, 5))
    assert images.std() > 20  # faces, not blank frames


def test_deterministic_for_a_seed_and_accepts_a_generator():
    a_images, a_labels = make_synthetic(3, rng=7)
    b_images, b_labels = make_synthetic(3, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a_images, b_images)
    np.testing.assert_array_equal(a_labels, b_labels)
    c_images, _ = make_synthetic(3, rng=8)
    assert not np.array_equal(a_images, c_images)


def test_splits_have_the_load_fer2013_structure():
    data = synthetic_splits(n_train_per_class=4, n_test_per_class=2, seed=1)
    assert isinstance(data, Dataset)
    assert list(data) == ["train", "test"]
    assert data.report.counts == {"train": 28, "test": 14}
    # The test split depends only on the seed, not on how many training faces were drawn.
    other = synthetic_splits(n_train_per_class=6, n_test_per_class=2, seed=1)
    np.testing.assert_array_equal(data["test"].images, other["test"].images)


def test_classes_carry_signal_beyond_a_linear_baseline_chance():
    # A ridge-regression classifier on raw, per-image-standardised pixels is a weak learner
    # (pose and lighting vary), but it must still beat chance (1/7 ~ 0.14) clearly; the
    # slow test below checks that a small CNN does much better.
    def features(x: np.ndarray) -> np.ndarray:
        x = x.reshape(len(x), -1).astype(np.float64)
        x -= x.mean(axis=1, keepdims=True)
        return x / (x.std(axis=1, keepdims=True) + 1e-6)

    train_x, train_y = make_synthetic(60, rng=0)
    test_x, test_y = make_synthetic(20, rng=100)
    f_train, f_test = features(train_x), features(test_x)
    targets = np.eye(NUM_CLASSES)[train_y]
    w = np.linalg.solve(f_train.T @ f_train + 10 * np.eye(f_train.shape[1]), f_train.T @ targets)
    accuracy = np.mean((f_test @ w).argmax(axis=1) == test_y)
    assert accuracy > 0.25


@pytest.mark.slow
def test_small_cnn_learns_synthetic_faces():
    # Optional cross-check with PyTorch: a tiny CNN reaches well above chance in seconds.
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    data = synthetic_splits(n_train_per_class=300, n_test_per_class=60, seed=0)

    def tensor(images: np.ndarray):
        return torch.tensor((images[:, None] / 255.0 - 0.5) / 0.25, dtype=torch.float32)

    x, y = tensor(data["train"].images), torch.tensor(data["train"].labels)
    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 6 * 6, 128), nn.ReLU(), nn.Linear(128, NUM_CLASSES),
    )
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    rng = np.random.default_rng(0)
    for _ in range(6):
        for idx in np.array_split(rng.permutation(len(y)), len(y) // 64):
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        predicted = net(tensor(data["test"].images)).argmax(1).numpy()
    assert np.mean(predicted == data["test"].labels) > 0.5
