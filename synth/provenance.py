"""Which software produced a result: the one reader of installed package versions, shared by the dataset
manifest (synth) and a training run's provenance (train) so both record versions alike."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata


def package_versions(names: Iterable[str], missing: str | None = None) -> dict[str, str]:
    """Python's version and each named package's. A package that is not installed is left out, or recorded
    as ``missing`` when that is given (a run's provenance says what it lacked; a manifest lists what it used)."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if missing is not None:
                versions[name] = missing
    return versions
