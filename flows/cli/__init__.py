"""The ``simreal`` console script: one subcommand per stage, each with an example in its --help.

It sits at the top layer because its handlers call into every package below (synth, train, flows).
Heavy libraries (torch, bpy, pyrender, prefect) are imported inside the handlers, so ``--help`` stays
instant and a rendering process never imports torchvision by accident (see the EGL/triton trap in
STACK.md). DDP starts the same parser: ``torchrun --nproc_per_node 2 -m flows.cli train ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import textwrap
import threading

from synth.errors import SimrealError

EPILOG = textwrap.dedent(
    """\
    stages:
      simreal sku generate --retail 30 --industrial 12 --seed 0     fill the default catalog
      simreal sku add mesh.glb --name "Cracker box" --category crackers
      simreal render --config configs/retail_shelf.yaml --n 200 --out runs/shelf --seed 0 --workers 2
      simreal viz runs/shelf && simreal stats runs/shelf
      simreal pretrain                                            a detector pretrained on renders
      simreal train --data runs/shelf --model maskrcnn --out runs/train-shelf
      simreal extend runs/train-shelf/checkpoints/last.pt --new runs/new-skus --out runs/extended
      simreal evaluate --model runs/train-shelf/checkpoints/last.pt --data ../shared/real/retail/ycbv_sample
      simreal report runs/train-shelf
      simreal run                                                 render -> train -> evaluate -> report
      simreal bench render | simreal bench train | simreal bench sim2real --task retail
    """
)


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the hand-wrapped examples of every epilog as written."""


def add_command(subparsers, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand parser with the shared formatter, so every --help lays out its examples alike."""
    return subparsers.add_parser(name, formatter_class=Formatter, **kwargs)


def checked_params(build, command: str):
    """``build()`` (pydantic parameters from the flags), or the first value it refused as one line naming
    the flag, before Prefect starts."""
    from pydantic import ValidationError

    from synth.errors import ConfigError

    try:
        return build()
    except ValidationError as e:
        first = e.errors()[0]
        flag = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else command
        raise ConfigError(flag, first["msg"].removeprefix("Value error, ")) from None


def key_value(text: str) -> tuple[str, object]:
    """``key=value`` with a YAML value: ``steps=100``, ``lighting.count=[1,2]``, ``augment.strength=0.3``."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    return key.strip(), yaml.safe_load(value)


def _version() -> str:
    """The installed package's version (pyproject.toml), or a note when running from an uninstalled tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("simreal")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    # Imported here: each command module imports Formatter/add_command from this package.
    from flows.cli import bench, data, evaluation, extend, pretrain, render, run, sku, training

    parser = argparse.ArgumentParser(
        prog="simreal",
        formatter_class=Formatter,
        epilog=EPILOG,
        description="Synthetic data and sim-to-real training for detection and instance segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"simreal {_version()}")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sku.add_sku_parser(sub)
    render.add_render_parser(sub)
    data.add_viz_parser(sub)
    data.add_stats_parser(sub)
    training.add_train_parser(sub)
    pretrain.add_pretrain_parser(sub)
    extend.add_extend_parser(sub)
    evaluation.add_evaluate_parser(sub)
    evaluation.add_report_parser(sub)
    run.add_run_parser(sub)
    bench.add_bench_parser(sub)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command; bad input becomes one line on stderr and exit code 2, never a traceback."""
    try:
        return int(args.func(args) or 0)
    except SimrealError as e:
        print(f"simreal: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simreal: interrupted", file=sys.stderr)
        return 130


LIBRARY_LOGGERS = ("synth", "train", "bench", "flows.pretrain")


class _Stdout(logging.StreamHandler):
    """A handler writing to whatever sys.stdout is when a line is logged (a redirect, a test's capture),
    not to the stream that was current when the first command ran."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def show_library_logs(level: int = logging.INFO) -> None:
    """Print the project's own log lines (progress, figures) plainly on stdout; other libraries stay quiet.
    They stop there: Prefect's console handler on the root logger would print each one a second time."""
    handler = _Stdout()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ.setdefault("MPLBACKEND", "Agg")
    args = build_parser().parse_args(argv)
    show_library_logs()
    # only as the program itself: a caller passing argv (a test, a notebook) keeps its own SIGTERM handling
    with _sigterm_unwinds() if argv is None else contextlib.nullcontext():
        return run_command(args)


@contextlib.contextmanager
def _sigterm_unwinds():
    """SIGTERM (``kill``, ``timeout``, a job scheduler) ends a command the way Ctrl-C does: Python unwinds,
    so render pools shut down and the ephemeral Prefect server a flow started is stopped at exit. Killed
    without unwinding, that server outlived the command as an orphan process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, _frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
