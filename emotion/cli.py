"""Pieces shared by the command-line tools: argument types, why a path is not the file a
tool was given, and whether an exception is the user's Ctrl-C."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path


class Bounded:
    """An argparse ``type`` for a number in a range: ``Bounded(float, low=0, low_open=True)``
    accepts x > 0. Floats must be finite. ``check`` applies the same rule to a value
    already parsed (``resolve_config`` on a config built in code)."""

    def __init__(self, kind: type, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> None:
        self.kind, self.low, self.high = kind, low, high
        self.low_open, self.high_open = low_open, high_open
        self.__name__ = kind.__name__  # argparse names the type in some messages

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"{'<' if self.high_open else '<='} {self.high:g}"

    def check(self, value) -> str | None:
        """None when ``value`` is allowed, else the reason."""
        if self.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            return f"must be an integer, got {value!r}"
        if self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"must be a number, got {value!r}"
            if not math.isfinite(value):
                return f"must be a finite number, got {value}"
        too_low = self.low is not None and (value < self.low or
                                            (self.low_open and value == self.low))
        too_high = self.high is not None and (value > self.high or
                                              (self.high_open and value == self.high))
        return f"must be {self.describe()}, got {value:g}" if too_low or too_high else None

    def __call__(self, text: str):
        try:
            value = self.kind(text)
        except ValueError:
            what = "an integer" if self.kind is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        problem = self.check(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value


def path_text(text: str) -> str:
    """An argparse ``type`` for a file or folder name: any text but the empty string, which
    ``pathlib`` would read as the current folder (``Path("") == Path(".")``)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path; give a file or folder name")
    return text


def not_a_file(path: str | os.PathLike, noun: str) -> str:
    """Why ``path``, which is not a regular file, cannot be read as ``noun`` ("image file",
    "weights file", ...): a folder, a broken link, a pipe or device (which would block or
    never end), or nothing at all. For messages such as ``f"{path}: {not_a_file(...)}"``."""
    path = Path(path)
    try:
        if path.is_dir():
            return f"is a folder, not a {noun}"
        if path.is_symlink() and not path.exists():
            return f"is a link to {os.readlink(path)}, which does not exist or loops"
        if path.exists():
            return f"is a pipe, socket or device, not a {noun}"
    except OSError as exc:  # a name too long, a folder that may not be searched, ...
        return f"cannot be read as a {noun} ({exc.strerror or exc})"
    return f"no such {noun}"


def is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C, also when it arrives inside a compiled Numba function: the dispatcher then
    raises ``SystemError(... returned a result with an exception set)`` with the
    KeyboardInterrupt as its context."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, KeyboardInterrupt):
            return True
        if not isinstance(exc, SystemError):
            return False
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def run(main: Callable[[], int]) -> int:
    """``main()``'s exit status; when the program reading our output goes away (``... | head``),
    stop quietly with status 141 (128 + SIGPIPE), as Unix tools do, instead of a traceback."""
    try:
        code = main()
        sys.stdout.flush()  # a pipe closed after the last write shows up here
        return code
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that one is quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
