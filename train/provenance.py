"""Where a result came from: code version, package versions, device. Recorded at train time into
``RUN_DIR/provenance.json`` (the report may be written later, on another machine)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import torch

import synth.provenance

PACKAGES = ("torch", "torchvision", "kornia", "pycocotools", "numpy", "pydantic", "simreal")


def git_info(repo: Path | None = None) -> dict:
    """Commit and dirty flag of the source tree this package runs from ("unknown" outside git)."""
    repo = repo or Path(__file__).resolve().parents[1]

    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    if commit is None:
        inside = run("rev-parse", "--is-inside-work-tree")
        return {
            "commit": "no commits yet" if inside == "true" else "unknown (not a git checkout)",
            "dirty": None,
        }
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str]:
    """The versions of training's packages; one that is missing is recorded as such, not left out."""
    return synth.provenance.package_versions(PACKAGES, missing="not installed")


def device_info(device: torch.device | str) -> dict:
    device = torch.device(device)
    info = {"device": str(device), "platform": platform.platform(), "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda" and torch.cuda.is_available():
        idx = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            gpu_count=torch.cuda.device_count(),
        )
    else:
        info["cpu"] = platform.processor() or platform.machine()
    return info


def provenance(device: torch.device | str, **extra) -> dict:
    return {
        "git": git_info(),
        "packages": package_versions(),
        "device": device_info(device),
        "command": " ".join(sys.argv),
        **extra,
    }
