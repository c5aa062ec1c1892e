"""Where the repository and the shared data folder are. Real photo sets and big meshes are not committed:
they live in ../shared beside the checkout, which every layer may need to find."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    """../shared beside the repository (override with $SIMREAL_SHARED)."""
    return Path(os.environ.get("SIMREAL_SHARED", REPO_ROOT.parent / "shared"))


def find_input(path: str | Path) -> Path:
    """A relative input path (a shipped config, the default catalog) from the current folder when it is
    there, else the repository's copy when that exists, so `simreal` works when run from any folder.
    Anything else is returned as given: the error that follows names it."""
    path = Path(path)
    if path.is_absolute() or path.exists() or not (REPO_ROOT / path).exists():
        return path
    return REPO_ROOT / path
