"""Shared test configuration: hypothesis profiles and the location of the real data.

Numba compiles a kernel on its first call, which would trip hypothesis's per-example
deadline, so every profile sets deadline=None. CI loads the "ci" profile (derandomized:
the same examples every run, so a red CI is reproducible); locally HYPOTHESIS_PROFILE
picks one.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev", deadline=None, max_examples=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "ci", deadline=None, max_examples=30, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough", deadline=None, max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

FER2013_DIR = Path(os.environ.get(
    "FER2013_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013"))
