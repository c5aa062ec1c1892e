"""The deployment path users run: a Prefect server on a free 127.0.0.1 port, the served
``render-then-train/local`` deployment, ``prefect deployment run ... --watch``; then everything is stopped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from flow_fixtures import REPO, free_port, tiny_pipeline

from flows.cli import build_parser
from flows.cli.run import pipeline_params_from_args

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
PREFECT = [sys.executable, "-m", "prefect"]


def _wait(predicate, seconds: float, what: str, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}")
        time.sleep(0.5)
    raise AssertionError(f"{what}: not ready after {seconds} s")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


async def deployment_defaults(api: str) -> dict:
    """The `params` default the served deployment offers (its parameter schema, as the UI shows it)."""
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api=api) as client:
        deployment = await client.read_deployment_by_name("render-then-train/local")
    return deployment.parameter_openapi_schema["properties"]["params"]["default"]


def test_served_deployment_runs_to_completion(tmp_path):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = dict(
        os.environ,
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_API_URL=api,
        SIMREAL_SHARED=str(tmp_path / "no-shared"),
        PREFECT_LOGGING_LEVEL="INFO",
    )
    server = subprocess.Popen(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    serve = None
    try:
        _wait(lambda: _healthy(api), 120, "prefect server", server)
        serve_log = (tmp_path / "serve.log").open("w")
        serve = subprocess.Popen(
            [sys.executable, "-m", "flows.serve", "--name", "local"],
            env=env,
            cwd=REPO,
            stdout=serve_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        waited = subprocess.run(
            [sys.executable, "-m", "flows.deployment", "wait", "render-then-train/local", "--timeout", "180"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert waited.returncode == 0, waited.stderr + (tmp_path / "serve.log").read_text()[-3000:]
        assert serve.poll() is None

        bad = subprocess.run(
            [
                *PREFECT,
                "deployment",
                "run",
                "render-then-train/local",
                "--param",
                'params={"render": {"n": -1}}',
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        assert bad.returncode != 0, bad.stdout
        assert "n" in (bad.stdout + bad.stderr)

        # the deployment's defaults are the ones `simreal run` uses; the run shrinks only the sizes
        cli_defaults = pipeline_params_from_args(build_parser().parse_args(["run"]))
        assert asyncio.run(deployment_defaults(api)) == cli_defaults.model_dump(mode="json")
        params = {"params": tiny_pipeline(tmp_path).model_dump(mode="json")}
        run = subprocess.run(
            [
                *PREFECT,
                "deployment",
                "run",
                "render-then-train/local",
                "--params",
                json.dumps(params),
                "--watch",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=780,
        )
        assert run.returncode == 0, (
            run.stdout[-3000:] + run.stderr[-3000:] + (tmp_path / "serve.log").read_text()[-3000:]
        )

        from prefect.client.orchestration import PrefectClient

        async def query():
            async with PrefectClient(api=api) as client:
                runs = await client.read_flow_runs()
                arts = await client.read_artifacts()
                return runs, arts

        runs, arts = asyncio.run(query())
        parents = [r for r in runs if r.deployment_id is not None]
        assert len(parents) == 1 and parents[0].state.is_completed()
        assert {"render-progress", "train-progress", "evaluation-summary", "per-class-ap"} <= {
            a.key for a in arts
        }
        assert (tmp_path / "train" / "report.html").is_file()
        assert (tmp_path / "data" / "annotations.json").is_file()
        told = subprocess.run(
            [sys.executable, "-m", "flows.deployment", "outcome", "render-then-train/local"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert told.returncode == 0 and "Completed" in told.stdout, told.stdout + told.stderr
        assert str(tmp_path / "train" / "report.html") in told.stdout and "AP50 bbox" in told.stdout
    finally:
        if serve is not None:
            _stop(serve)
        _stop(server)
    assert server.poll() is not None and (serve is None or serve.poll() is not None)
    assert not _healthy(api)
