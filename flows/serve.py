"""Serve the ``render-then-train`` and ``new-sku-dataset`` deployments from this process (a long-running
worker for a Prefect server).

    export PREFECT_API_URL=http://127.0.0.1:4200/api   # the server every command below talks to
    python -m flows.serve --name local          # then: prefect deployment run render-then-train/local --watch
    prefect deployment run new-sku-dataset/local --param params='{"meshes": ["ketchup.obj"]}' --watch

It waits for the server at PREFECT_API_URL to answer, and refuses to start without one (it would serve a
private temporary server nobody else sees). The deployment's parameter defaults are flows.params'
(the same as ``simreal run``'s); values given to ``prefect deployment run --param params='{...}'`` are
validated against ``PipelineParams`` before a run is created.
"""

from __future__ import annotations

import argparse

from flows.env import prefect_defaults


def main(argv: list[str] | None = None) -> None:
    prefect_defaults()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="local", help="deployment name (default: local)")
    p.add_argument("--limit", type=int, default=1, help="flow runs executed at the same time")
    p.add_argument("--timeout", type=float, default=180, help="seconds to wait for the server to answer")
    args = p.parse_args(argv)

    from flows.deployment import require_api_url, wait_for_server

    url = require_api_url("flows.serve")
    if not wait_for_server(args.timeout):
        raise SystemExit(f"flows.serve: no Prefect server answers at {url} after {args.timeout:.0f} s")
    from prefect import serve

    from flows.new_sku import new_sku_dataset
    from flows.render_then_train import render_then_train

    serve(
        render_then_train.to_deployment(
            name=args.name, description="render -> train -> evaluate on real photos -> report"
        ),
        new_sku_dataset.to_deployment(
            name=args.name,
            description="new meshes -> dataset with each in a share of images -> extended detector",
        ),
        limit=args.limit,
    )


if __name__ == "__main__":
    main()
