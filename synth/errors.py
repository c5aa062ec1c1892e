"""One exception type for bad input, so the CLI can print it as a single line without a traceback."""

from __future__ import annotations

from pathlib import Path


class SimrealError(Exception):
    """A user-facing error: what went wrong and where, in one line."""

    def __init__(self, where: str | Path | None, problem: str):
        self.where = str(where) if where is not None else None
        self.problem = problem
        super().__init__(f"{self.where}: {problem}" if self.where else problem)

    def __reduce__(self):  # picklable, so errors cross process boundaries (workers, Prefect, Dask) intact
        return (type(self), (self.where, self.problem))


class AssetError(SimrealError):
    """A mesh, texture or catalog record that cannot be used."""


class ConfigError(SimrealError):
    """A configuration file or parameter that does not validate."""
