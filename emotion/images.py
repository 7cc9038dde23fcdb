"""Reading image files safely: one function, ``decode_image``, used by the training loader
(``emotion.data``) and by inference (``recognizer.read_image``), so both accept and refuse
the same files.

* **Size limit before decoding.** A small file can hold a huge image (a 876 KB PNG of
  30000 x 30000 pixels decodes to 2.7 GB). The width and height are read from the file's
  header first (PNG, JPEG, GIF, BMP, WebP, TIFF and PNM: ``image_size``) and an image
  above ``MAX_IMAGE_PIXELS`` (50 megapixels, more than a 48-megapixel phone photo) is
  refused before any pixel is decoded. Other formats get OpenCV's own limit (2**30 pixels,
  ``OPENCV_IO_MAX_IMAGE_PIXELS``).
* **Truncated files are refused.** ``cv2.imdecode`` returns None for a JPEG or PNG cut off
  in the middle, where ``cv2.imread`` returns the top part with the rest filled grey.
* **Non-ASCII paths work** (the bytes are read with NumPy, not by OpenCV).
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import cv2
import numpy as np

from emotion.cli import not_a_file

MAX_IMAGE_PIXELS = 50_000_000

# JPEG start-of-frame markers (which carry the size): C0-CF except DHT (C4), JPG (C8), DAC (CC)
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG, GIF, BMP, WebP, TIFF or PNM file's
    bytes; None for another format or a header too short or malformed to read."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:2] == b"BM":
            if struct.unpack("<I", data[14:18])[0] == 12:  # the old OS/2 header
                return struct.unpack("<HH", data[18:22])
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)  # a negative height means top-down rows
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                return (int.from_bytes(data[24:27], "little") + 1,
                        int.from_bytes(data[27:30], "little") + 1)
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            return None
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:4] in (b"II*\0", b"MM\0*"):
            return _tiff_size(data)
        pnm = re.match(rb"P[1-7](?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)", data[:1024])
        if pnm:
            return int(pnm[1]), int(pnm[2])
    except (struct.error, IndexError):
        return None
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """ImageWidth (tag 256) and ImageLength (257) from a TIFF's first directory."""
    end = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(end + "I", data[4:8])
    (count,) = struct.unpack(end + "H", data[offset:offset + 2])
    found = {}
    for i in range(count):
        tag, kind = struct.unpack(end + "HH", data[offset + 2 + 12 * i:offset + 6 + 12 * i])
        value = data[offset + 10 + 12 * i:offset + 14 + 12 * i]
        if tag in (256, 257):  # SHORT (3) or LONG (4), left-justified in the value field
            found[tag] = struct.unpack(end + ("H" if kind == 3 else "I"),
                                       value[:2] if kind == 3 else value)[0]
    return (found[256], found[257]) if len(found) == 2 else None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG's marker segments to the first start-of-frame, which holds the size."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def decode_image(path: str | os.PathLike, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode an image file with ``cv2.imdecode(bytes, flags)``.

    Raises FileNotFoundError naming the path when it does not exist (or is a folder), and
    ValueError naming it when the image is larger than ``MAX_IMAGE_PIXELS`` (checked from the
    header, before decoding) or OpenCV cannot decode it (not an image, truncated, empty).
    OSError (unreadable file, a symlink loop) passes through.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {not_a_file(path, 'image file')}")
    data = np.fromfile(str(path), dtype=np.uint8)
    size = image_size(data.tobytes())
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ValueError(f"{path}: image of {size[0]}x{size[1]} pixels is larger than the "
                         f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels accepted "
                         "(emotion.images.MAX_IMAGE_PIXELS); shrink it first")
    try:
        image = cv2.imdecode(data, flags) if data.size else None
    except cv2.error:  # OpenCV's own size limit, for formats image_size cannot read
        image = None
    if image is None or image.size == 0:
        raise ValueError(f"{path}: not a readable image (OpenCV could not decode it: not an "
                         "image, truncated or too large)")
    return image
