"""Bundled sample dumps made by ``ktrace emit`` (installed as ``ktrace_decode.samples``)."""

from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent

#: The sample ``ktrace tui`` and the README's first command open by default.
DEFAULT_SAMPLE = "storm"


def sample_path(name: str = DEFAULT_SAMPLE) -> Path:
    """Directory of a bundled sample dump."""
    return SAMPLES_DIR / name


def sample_names() -> list[str]:
    """Names of the bundled samples (directories holding a scenario.toml)."""
    return sorted(p.parent.name for p in SAMPLES_DIR.glob("*/scenario.toml"))
