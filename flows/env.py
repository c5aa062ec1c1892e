"""Prefect environment defaults, applied before prefect is imported: a project-local PREFECT_HOME and no
analytics (../shared/STACK.md), so runs work offline and never touch ~/.prefect."""

from __future__ import annotations

import os
from pathlib import Path


def prefect_defaults() -> None:
    root = Path(__file__).resolve().parents[1]
    os.environ.setdefault("PREFECT_HOME", str(root / ".prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads starve the render workers
    # the ephemeral API server needs longer than Prefect's 20 s to start on a busy 2-core machine
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
