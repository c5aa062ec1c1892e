"""Waiting for a served deployment, and saying how its last run ended, for the by-hand Prefect path and
scripts/deploy_local.sh:

    python -m flows.deployment wait 'render-then-train/local'      # until the server answers and it is served
    python -m flows.deployment outcome 'render-then-train/local'   # report path + metrics, or why it failed

Both talk to the server at ``PREFECT_API_URL`` (without it every Prefect command starts a private
temporary server, which is why ``prefect deployment run --watch`` used to wait forever). ``outcome`` exits
0 when the last run completed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from flows.env import prefect_defaults

SUMMARY_KEY = "evaluation-summary"  # the artifact flows/training.py writes: metrics table and report path


def api_url() -> str | None:
    """The Prefect API this process talks to (environment or profile), None when it would be ephemeral."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def require_api_url(what: str) -> str:
    url = api_url()
    if url is None:
        sys.exit(
            f"{what}: PREFECT_API_URL is not set, so this would use a private temporary server nobody else "
            "sees; start one and point every command at it:\n"
            "  prefect server start --host 127.0.0.1 --port 4200 --background\n"
            "  export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    return url


async def _healthy() -> bool:
    from prefect.client.orchestration import get_client

    try:
        async with get_client() as client:
            return await client.api_healthcheck() is None
    except Exception:  # noqa: BLE001 - not up yet
        return False


def wait_for_server(timeout_s: float) -> bool:
    """True once the API at PREFECT_API_URL answers its health check (a server takes ~6-17 s to start)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if asyncio.run(_healthy()):
            return True
        time.sleep(1)
    return False


async def _served(name: str) -> bool:
    from prefect.client.orchestration import get_client

    try:
        async with get_client() as client:
            await client.read_deployment_by_name(name)
        return True
    except Exception:  # noqa: BLE001 - server still starting or deployment not registered yet
        return False


def wait(name: str, timeout_s: float) -> int:
    """Block until deployment ``name`` is registered on the server (0), or say why not (1)."""
    url = require_api_url("wait")
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if asyncio.run(_served(name)):
            print(f"deployment {name} is served ({url})")
            return 0
        time.sleep(2)
    print(f"deployment {name} not served at {url} after {timeout_s:.0f} s", file=sys.stderr)
    return 1


async def _last_run(name: str) -> tuple[object, list[object], list[str]]:
    """The deployment's newest flow run, the summary artifacts of it and its child runs, its error logs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas import filters as f
    from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort, LogSort

    async with get_client() as client:
        deployment = await client.read_deployment_by_name(name)
        runs = await client.read_flow_runs(
            flow_run_filter=f.FlowRunFilter(deployment_id=f.FlowRunFilterDeploymentId(any_=[deployment.id])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        )
        if not runs:
            return None, [], []
        run = runs[0]
        children = await client.read_flow_runs(
            flow_run_filter=f.FlowRunFilter(parent_flow_run_id=f.FlowRunFilterParentFlowRunId(any_=[run.id]))
        )
        ids = [run.id, *(c.id for c in children)]
        artifacts = await client.read_artifacts(
            artifact_filter=f.ArtifactFilter(
                key=f.ArtifactFilterKey(any_=[SUMMARY_KEY]), flow_run_id=f.ArtifactFilterFlowRunId(any_=ids)
            ),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
        logs = await client.read_logs(
            log_filter=f.LogFilter(
                flow_run_id=f.LogFilterFlowRunId(any_=ids), level=f.LogFilterLevel(ge_=40)
            ),
            sort=LogSort.TIMESTAMP_ASC,
        )
    return run, artifacts, [log.message for log in logs]


def outcome(name: str) -> int:
    """Print how the deployment's last run ended: the evaluation summary, or the failure reason."""
    require_api_url("outcome")
    run, artifacts, errors = asyncio.run(_last_run(name))
    if run is None:
        print(f"{name}: no flow run yet")
        return 1
    state = run.state
    print(f"{name}: flow run '{run.name}' {state.name if state else 'unknown'}")
    if state is not None and state.is_completed():
        if artifacts:
            print(artifacts[0].data)
        return 0
    reason = (state.message if state else "") or "no message"
    print(f"reason: {reason}")
    lasts = [e.strip().splitlines()[-1][:300] for e in errors if e.strip()]
    for line in dict.fromkeys(x for x in lasts if x.split(": ", 1)[-1] not in reason):
        print("  " + line)  # error lines that add to the reason (a child run's, a task's)
    return 1


def main(argv: list[str] | None = None) -> int:
    prefect_defaults()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["wait", "outcome"])
    p.add_argument("name", nargs="?", default="render-then-train/local", help="FLOW/DEPLOYMENT")
    p.add_argument("--timeout", type=float, default=300, help="wait: seconds before giving up")
    args = p.parse_args(argv)
    return wait(args.name, args.timeout) if args.action == "wait" else outcome(args.name)


if __name__ == "__main__":
    sys.exit(main())
