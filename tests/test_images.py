"""Image input: sizes read from file headers, the pixel limit checked before decoding, one
reader for training and inference; weights metadata of the wrong type."""

from __future__ import annotations

import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from face_helpers import save_small_model

import minicnn
from emotion.images import MAX_IMAGE_PIXELS, decode_image, image_size
from emotion.recognizer import load_weights, read_image


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tiff", ".ppm", ".pgm"])
def test_image_size_reads_the_header_of_every_format_the_loader_takes(ext):
    image = np.zeros((37, 53) if ext == ".pgm" else (37, 53, 3), np.uint8)
    ok, data = cv2.imencode(ext, image)
    assert ok and image_size(data.tobytes()) == (53, 37)


def test_image_size_of_gif_and_unknown_bytes():
    assert image_size(b"GIF89a\x35\x00\x25\x00") == (53, 37)
    assert image_size(b"plain text") is None
    assert image_size(b"\xff\xd8\xff\xe0") is None  # a JPEG cut before its size


def png_header(width: int, height: int) -> bytes:
    """The start of a PNG of width x height gray pixels: signature, IHDR and a scrap of
    compressed data, as a 30000 x 30000 image of one colour would begin."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = b"IDAT" + zlib.compress(bytes(width + 1) * 64)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + struct.pack(">I", len(idat) - 4) + idat
            + struct.pack(">I", zlib.crc32(idat)))


def test_a_huge_png_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_header(30000, 30000))
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"huge\.png: image of 30000x30000 pixels is larger "
                                         r"than the 50 megapixels"):
        read_image(path)
    assert time.perf_counter() - started < 1.0
    assert MAX_IMAGE_PIXELS == 50_000_000


def test_decode_image_refuses_truncated_files_and_keeps_good_ones(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    for ext in (".jpg", ".png"):
        data = cv2.imencode(ext, image)[1].tobytes()
        good, cut = tmp_path / f"good{ext}", tmp_path / f"cut{ext}"
        good.write_bytes(data)
        cut.write_bytes(data[: len(data) // 2])
        assert decode_image(good, cv2.IMREAD_UNCHANGED).shape == (64, 64, 3)
        with pytest.raises(ValueError, match=f"cut{ext}: not a readable image"):
            decode_image(cut, cv2.IMREAD_UNCHANGED)


def test_weights_metadata_of_the_wrong_type_is_a_weights_error(tmp_path):
    path = save_small_model(tmp_path / "w.npz")
    model = minicnn.load(path)
    model.save(path, metadata={**model.metadata, "classes": 7})
    with pytest.raises(minicnn.WeightsError, match="classes 7 are not"):
        load_weights(path)
