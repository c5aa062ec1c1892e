"""The console script (flows.cli): every stage has --help with an example, bad input is one line, not a
traceback, and building the parser imports nothing heavy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SUBCOMMANDS = [
    ["sku"],
    ["sku", "add"],
    ["sku", "list"],
    ["sku", "show"],
    ["sku", "generate"],
    ["sku", "remove"],
    ["render"],
    ["viz"],
    ["stats"],
    ["train"],
    ["evaluate"],
    ["report"],
    ["run"],
    ["bench"],
    ["bench", "render"],
    ["bench", "train"],
    ["bench", "sim2real"],
]


def simreal(*args, cwd=None, env_extra=None, timeout=300):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def test_top_level_help_lists_stages():
    r = simreal("--help")
    assert r.returncode == 0, r.stderr
    for word in ("sku", "render", "train", "evaluate", "report", "bench", "run"):
        assert word in r.stdout


@pytest.mark.parametrize("cmd", SUBCOMMANDS, ids=lambda c: " ".join(c))
def test_every_subcommand_help_has_an_example(cmd):
    r = simreal(*cmd, "--help")
    assert r.returncode == 0, r.stderr
    assert "example" in r.stdout.lower(), f"`simreal {' '.join(cmd)} --help` shows no example"
    assert "simreal " in r.stdout


def test_missing_mesh_is_one_line_error(tmp_path):
    r = simreal(
        "sku",
        "add",
        str(tmp_path / "nope.obj"),
        "--name",
        "X",
        "--category",
        "x",
        "--catalog",
        str(tmp_path / "cat"),
    )
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "nope.obj" in lines[0] and "Traceback" not in r.stderr


def test_bad_render_config_is_one_line_error(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("image:\n  width: 640\n  hieght: 480\n")
    r = simreal("render", "--config", str(cfg), "--n", "1", "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "bad.yaml" in lines[0] and "hieght" in lines[0]


def test_building_the_parser_imports_nothing_heavy():
    """`simreal --help` stays instant, and a render worker never pulls in torch (the EGL/triton trap)."""
    code = (
        "import sys, flows.cli; flows.cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'prefect', 'bpy', 'pyrender') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


def test_library_log_lines_print_once_after_prefect_set_up_its_logging():
    """Prefect puts a console handler on the root logger; the CLI's own plain lines must not reach it too."""
    code = (
        "import logging, flows; from prefect import flow; from flows.cli import show_library_logs; "
        "show_library_logs(); logging.getLogger('bench.x').info('figure 1'); "
        "logging.getLogger('train.y').warning('careful')"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    both = out.stdout + out.stderr
    assert (both.count("figure 1"), both.count("careful")) == (1, 1), both


def _children_serving_prefect(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` and that run Prefect's API server (an ephemeral one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"prefect.server.api.server" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_sigterm_stops_the_ephemeral_prefect_server_with_the_command(tmp_path):
    """``kill`` / ``timeout`` end a flow command like Ctrl-C: the Prefect server it started goes with it."""
    import signal
    import time

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "run",
            "--n",
            "400",
            "--steps",
            "200",
            "--out",
            str(tmp_path / "r"),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    servers: list[int] = []
    try:
        deadline = time.time() + 240
        while not servers and proc.poll() is None and time.time() < deadline:
            time.sleep(0.5)
            servers = _children_serving_prefect(proc.pid)
        assert servers, "the flow never started its ephemeral Prefect server"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
        deadline = time.time() + 30
        while any(Path(f"/proc/{s}").exists() for s in servers) and time.time() < deadline:
            time.sleep(0.5)
        assert not any(Path(f"/proc/{s}").exists() for s in servers), (
            "the Prefect server outlived the command"
        )
        assert code == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for s in servers:
            try:
                os.kill(s, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_version_and_run_help_show_the_deployments_defaults(capsys):
    """`simreal run` takes every default from flows.params, the models the deployments use."""
    from flows import cli
    from flows.params import RenderParams, TrainParams

    assert simreal("--version").stdout.strip() == "simreal 0.1.0"
    args = cli.build_parser().parse_args(["run"])
    render, train = RenderParams(), TrainParams()
    assert (args.config, args.n, args.seed, args.backend, args.workers) == (
        render.config,
        render.n,
        render.seed,
        render.backend,
        render.workers,
    )
    assert (args.width, args.height) == (None, None) and render.overrides == {}  # the config's own size
    assert (args.model, args.steps, args.batch_size, args.image_size, args.class_agnostic) == (
        train.model,
        train.steps,
        train.batch_size,
        train.image_size,
        train.class_agnostic,
    )
    assert (f"{args.out}/data", f"{args.out}/train") == (render.out, train.out)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--help"])
    text = capsys.readouterr().out
    assert "Render a synthetic dataset" in text and f"(default: {render.n})" in text
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["viz", "--help"])
    assert "%%" not in capsys.readouterr().out


def test_shipped_inputs_resolve_from_the_repository_when_run_elsewhere(tmp_path, monkeypatch):
    from synth.catalog import Catalog
    from synth.config import read_yaml
    from synth.paths import find_input

    monkeypatch.chdir(tmp_path)
    assert find_input("configs/retail_table.yaml") == REPO / "configs" / "retail_table.yaml"
    assert "image" in read_yaml("configs/retail_table.yaml")
    assert Catalog("configs").root == REPO / "configs"  # the default catalog root resolves the same way
    assert find_input("configs/nope.yaml") == Path("configs/nope.yaml")  # errors name what was given
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "retail_table.yaml").write_text("mine: 1\n")
    assert read_yaml("configs/retail_table.yaml") == {"mine": 1}  # the current folder comes first


def test_pretrain_bad_flags_are_one_line_errors(tmp_path):
    for args, expected in (
        (["--images", "0"], "--images"),
        (["--model", "yolo"], "unknown model 'yolo'"),
        (["--catalog", str(tmp_path / "none")], "pretraining catalog not found"),
    ):
        r = simreal("pretrain", "--cache", str(tmp_path / "cache"), *args)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and expected in lines[0], r.stderr
    assert not (tmp_path / "cache").exists()  # refused before anything was made
