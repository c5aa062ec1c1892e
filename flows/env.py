"""Prefect environment defaults, applied before prefect is imported: a project-local PREFECT_HOME and no
analytics (../shared/STACK.md), so runs work offline and never touch ~/.prefect."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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


def prepare_local_prefect() -> None:
    """``prefect_defaults``, then the local Prefect database brought up to date once, under a file lock.

    Without an API URL every command starts its own ephemeral server on the one SQLite file in PREFECT_HOME,
    and each server migrates it on start: two commands started together on a fresh PREFECT_HOME race in
    those migrations and one prints a traceback. Migrating here first, one process at a time, leaves the
    servers nothing to change. A marker per Prefect version skips the work on every later start."""
    prefect_defaults()
    if os.environ.get("PREFECT_API_URL"):
        return  # a real server owns its database
    import fcntl

    import prefect

    home = Path(os.environ["PREFECT_HOME"]).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    marker = home / f".db-migrated-{prefect.__version__}"
    if marker.exists():
        return
    with open(home / ".db.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():  # another command migrated while this one waited
            return
        import asyncio

        asyncio.run(_migrate_and_register_blocks())
        marker.touch()


@contextmanager
def api_shared_with_workers() -> Iterator[None]:
    """Without an API URL, Prefect starts an ephemeral API server in every process that asks for a client,
    and the workers of a process-pool task runner are such processes: each started its own server (a
    uvicorn process on the same SQLite file) before its first task, ~6 s and ~3 s of CPU per worker on 2
    cores. This starts this process's server now (Prefect's own, the one its client would start) and names
    it in the settings, which the task runner hands to its workers, so they all use it. With an API URL
    set, or ephemeral servers disabled, nothing changes."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()  # a no-op when this process's client started it already
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield


async def _migrate_and_register_blocks() -> None:
    """What an ephemeral server does first on start (prefect 3.8, ``prefect.server.api.server``): the
    migrations, then the block types, memoized in PREFECT_HOME/memo_store.toml as the servers read it."""
    from prefect.server.api.server import _memoize_block_auto_registration
    from prefect.server.database import provide_database_interface
    from prefect.server.models.block_registration import run_block_auto_registration

    db = provide_database_interface()
    await db.create_db()

    @_memoize_block_auto_registration
    async def register() -> None:
        async with await db.session() as session:
            await run_block_auto_registration(session=session)

    await register()
