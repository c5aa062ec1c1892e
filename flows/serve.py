"""Serve the ``render-then-train`` deployment from this process (a long-running worker for a Prefect server).

    python -m flows.serve --name local          # then: prefect deployment run render-then-train/local --watch

Parameters given to ``prefect deployment run --param params='{...}'`` are validated against
``flows.params.PipelineParams`` before a run is created.
"""

from __future__ import annotations

import argparse

from flows.env import prefect_defaults


def main(argv: list[str] | None = None) -> None:
    prefect_defaults()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="local", help="deployment name (default: local)")
    p.add_argument("--limit", type=int, default=1, help="flow runs executed at the same time")
    args = p.parse_args(argv)

    from flows.render_then_train import render_then_train

    render_then_train.serve(
        name=args.name, limit=args.limit, description="render -> train -> evaluate on real photos -> report"
    )


if __name__ == "__main__":
    main()
