"""Where the repository and the shared data folder are. Real photo sets and big meshes are not committed:
they live in ../shared beside the checkout, which every layer may need to find."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    """../shared beside the repository (override with $SIMREAL_SHARED)."""
    return Path(os.environ.get("SIMREAL_SHARED", REPO_ROOT.parent / "shared"))
