"""Atomic writes: a crash or kill -9 leaves either the old file or the new one, never half of one.

Temporaries carry their writer's pid (``.NAME.PID.XXXXXXXX.tmp``, ``.NAME.old.PID``), so what a killed
writer left behind can be told from what a live one is still writing (``remove_stale_temporaries``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _public(path: str | Path, mode: int) -> None:
    """mkstemp/mkdtemp create 0600/0700 entries; give them the modes a normal create would (umask applied),
    so worker processes of other users can read the catalog and datasets."""
    os.chmod(path, mode & ~_umask())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        _public(tmp, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


@contextmanager
def atomic_directory(final: str | Path, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory; rename it to `final` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp", dir=final.parent))
    _public(tmp, 0o777)
    try:
        yield tmp
        if final.exists():
            if not replace:
                raise FileExistsError(final)
            old = final.with_name(f".{final.name}.old.{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")
_SET_ASIDE = re.compile(r"^\.(?P<name>.+)\.(?P<kind>old|removed)\.(?P<pid>\d+)$")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Clean up after writers that were killed in ``folder`` (kill -9 skips their ``finally``): their
    temp files and folders are deleted, an entry set aside for replacement (``.NAME.old.PID``) is put
    back when the new one never arrived, else deleted. Anything whose writer is alive is left alone.
    Pids are this machine's: do not share a folder between machines' writers. Returns what was removed."""
    removed = []
    for entry in sorted(Path(folder).iterdir()):
        match = _TEMPORARY.match(entry.name) or _SET_ASIDE.match(entry.name)
        if match is None or _process_alive(int(match["pid"])):
            continue
        final = entry.with_name(match["name"])
        if match.groupdict().get("kind") == "old" and not final.exists():
            os.replace(entry, final)  # killed between its two renames: the previous entry comes back
            log.info("restored %s, set aside by a writer that was killed", final)
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        log.info("removed %s, left by a writer that was killed", entry)
        removed.append(entry)
    return removed


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (one of another user counts; so does a zombie)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process, or no such pid at all
        return False
    except PermissionError:  # exists, belongs to another user
        return True
    return True
