"""Tiny pipeline parameters for the Prefect flow tests: a tmp catalog, small images, a few steps."""

from __future__ import annotations

import socket
from pathlib import Path

from randomize_helpers import RETAIL, make_catalog

from flows.params import PipelineParams, RenderParams, TrainParams

REPO = Path(__file__).resolve().parents[1]


def tiny_render(tmp_path: Path, name: str = "data", n: int = 6, seed: int = 0, **kw) -> RenderParams:
    catalog = tmp_path / "catalog"
    if not catalog.exists():
        make_catalog(catalog, RETAIL)
    overrides = {
        "catalog.root": str(catalog),
        "image.width": 96,
        "image.height": 72,
        "output.shard_size": 2,
        "objects.count": [2, 4],
        "distractors.count": [0, 1],
    }
    return RenderParams(
        config=str(REPO / "configs" / "retail_table.yaml"),
        overrides=overrides,
        n=n,
        seed=seed,
        out=str(tmp_path / name),
        workers=2,
        **kw,
    )


def tiny_train(tmp_path: Path) -> TrainParams:
    return TrainParams(
        model="maskrcnn_mobilenet",
        steps=3,
        batch_size=2,
        image_size=96,
        class_agnostic="product",
        out=str(tmp_path / "train"),
        overrides={
            "workers": 0,
            "threads": 1,
            "warmup_steps": 1,
            "val_fraction": 0.0,
            "checkpoint_every": 3,
            "log_every": 1,
        },
    )


def tiny_pipeline(tmp_path: Path) -> PipelineParams:
    """eval_sets left unset: with $SIMREAL_SHARED pointing at an empty folder the flow renders and uses a
    held-out set, which exercises that fallback too."""
    return PipelineParams(render=tiny_render(tmp_path), train=tiny_train(tmp_path))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_seen_by_task() -> tuple[str | None, bool]:
    """Run as a Prefect task in a process-pool worker: the API URL the worker uses, and whether it started
    an API server of its own for it (Prefect's ephemeral mode)."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value(), any(s.running for s in SubprocessASGIServer._instances.values())
