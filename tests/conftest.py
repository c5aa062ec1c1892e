"""Session-wide environment: headless EGL, no display for matplotlib, and a throw-away Prefect home so
tests never touch the developer's ~/.prefect or the project's .prefect (set before prefect is imported)."""

from __future__ import annotations

import logging
import os
import tempfile

import pytest

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("MPLBACKEND", "Agg")
# busy-waiting OpenMP threads make torch 10-20x slower on a loaded 2-core machine
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="simreal-test-prefect-")
os.environ["SIMREAL_CACHE"] = tempfile.mkdtemp(prefix="simreal-test-cache-")  # never ~/.cache/simreal
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("SIMREAL_OFFLINE", "1")  # `--weights auto` never downloads in a test (train.weights)


@pytest.fixture(autouse=True)
def _library_logs_reach_caplog(monkeypatch):
    """The CLI stops the project's loggers at their own handler (flows.cli.show_library_logs); a test that
    ran it must not hide later tests' log lines from caplog, which listens on the root logger."""
    for name in ("synth", "train", "bench"):
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
