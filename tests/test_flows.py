"""Prefect flows, in-process (ephemeral Prefect): shard reuse, Dask fan-out equality, parameter validation,
and the whole render-then-train chain at toy scale."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from flow_fixtures import tiny_pipeline, tiny_render
from pydantic import ValidationError


@pytest.fixture(autouse=True)
def _no_shared(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMREAL_SHARED", str(tmp_path / "no-shared"))


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and p.suffix in {".jpg", ".png", ".json"}
        and p.name not in {"manifest.json", "timings.json"}
        and "run.json" != p.name
    }


def test_invalid_parameters_are_rejected_before_running():
    from flows.params import RenderParams

    with pytest.raises(ValidationError, match="n"):
        RenderParams(n=-5)
    with pytest.raises(ValidationError, match="backend"):
        RenderParams(backend="vulkan")
    with pytest.raises(ValidationError, match="colour"):
        RenderParams(colour="red")


def test_process_pool_workers_use_this_processs_prefect_api():
    """In ephemeral mode each task-runner worker started an API server of its own before its first task
    (~6 s a worker on 2 cores); inside ``api_shared_with_workers`` (what ``run_render`` runs its local
    workers in) a worker uses this process's server and starts none."""
    from flow_fixtures import api_seen_by_task
    from prefect import flow, task
    from prefect.settings import PREFECT_API_URL
    from prefect.task_runners import ProcessPoolTaskRunner

    from flows.env import api_shared_with_workers

    probe = task(api_seen_by_task, name="api-probe")

    @flow(name="api-probe", task_runner=ProcessPoolTaskRunner(max_workers=1))
    def probe_flow():
        return probe.submit().result()

    assert PREFECT_API_URL.value() is None  # ephemeral mode, as the tests and a fresh machine run
    with api_shared_with_workers():
        ours = PREFECT_API_URL.value()
        url, started_own = probe_flow()
    assert ours and ours.startswith("http://127.0.0.1:") and url == ours
    assert not started_own
    assert PREFECT_API_URL.value() is None  # the setting is this block's only


def test_render_flow_reuses_finished_shards(tmp_path):
    from flows.render import run_render

    params = tiny_render(tmp_path)
    first = run_render(params)
    assert (first["shards_rendered"], first["shards_reused"]) == (3, 0)
    shard_files = sorted(Path(params.out, "shards").rglob("*"))
    stamps = {p: p.stat().st_mtime_ns for p in shard_files}
    second = run_render(params)
    assert (second["shards_rendered"], second["shards_reused"], second["images_rendered"]) == (0, 3, 0)
    assert {p: p.stat().st_mtime_ns for p in sorted(Path(params.out, "shards").rglob("*"))} == stamps
    manifest = json.loads(Path(params.out, "manifest.json").read_text())
    assert manifest["timings"]["last_run"]["shards_rendered"] == 0


def test_a_folder_holding_another_dataset_is_kept_apart(tmp_path):
    """Two entry points with different parameters and the same default `out` never collide."""
    from flows.render import run_render

    first = run_render(tiny_render(tmp_path, n=4))
    other = run_render(tiny_render(tmp_path, n=2))
    assert first["out"] == str(tmp_path / "data")
    assert Path(other["out"]).parent == tmp_path and Path(other["out"]).name.startswith("data-")
    assert json.loads(Path(first["out"], "run.json").read_text())["n"] == 4  # left as it was
    again = run_render(tiny_render(tmp_path, n=2))
    assert again["out"] == other["out"] and again["shards_rendered"] == 0


@pytest.mark.slow
def test_dask_cluster_renders_the_same_dataset(tmp_path):
    import dask
    from distributed import LocalCluster

    from flows.render import run_render
    from synth.dataset import render_dataset

    reference = tiny_render(tmp_path, name="reference")
    render_dataset(
        reference.load_config(), reference.n, reference.out, seed=reference.seed, workers=1, progress=False
    )
    # Nanny processes import and connect slowly on a loaded 2-core machine: allow minutes, not 30 s.
    slow_start = {"distributed.comm.timeouts.connect": "180s", "distributed.comm.timeouts.tcp": "180s"}
    with (
        dask.config.set(slow_start),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
        ) as cluster,
    ):
        params = tiny_render(tmp_path, name="dask", dask_address=cluster.scheduler_address)
        summary = run_render(params)
    assert summary["task_runner"] == "dask" and summary["shards_rendered"] == 3
    ref, got = _tree_bytes(Path(reference.out)), _tree_bytes(Path(params.out))
    assert ref.keys() == got.keys() and len(ref) > 10
    assert ref == got


def test_default_eval_sets_say_what_was_found(tmp_path):
    from flows.render_then_train import default_eval_sets

    sets, note = default_eval_sets()
    assert sets == [] and "No real photos" in note and "RENDERED" in note
    assert str(tmp_path) not in note  # the sentence goes into a report made to be shared
    found = tmp_path / "no-shared" / "real" / "retail" / "freiburg_dev"
    found.mkdir(parents=True)
    (found / "annotations.json").write_text("{}")
    sets, note = default_eval_sets()
    assert [s.name for s in sets] == ["freiburg_dev (real, retail)"] and sets[0].class_agnostic
    assert "freiburg_dev" in note and "ycbv" not in note and str(tmp_path) not in note


@pytest.mark.slow
def test_render_then_train_end_to_end_in_process(tmp_path):
    from prefect import get_client

    from flows.render_then_train import render_then_train

    result = render_then_train(tiny_pipeline(tmp_path))
    run = Path(result["run_dir"])
    assert (run / "checkpoints" / "last.pt").is_file()
    assert Path(result["report"]).is_file() and Path(result["report"]).suffix == ".html"
    assert "heldout (rendered)" in result["metrics"]
    assert result["metrics"]["heldout (rendered)"]["bbox"]["AP"] is not None
    # without real photos the report says so above its numbers, and why
    assert "No real photos" in result["note"]
    md = (run / "report.md").read_text()
    assert "heldout (rendered): No real photos" in md
    assert md.index("No real photos") < md.index("Accuracy (COCO metrics)")

    async def artifact_keys():
        async with get_client() as client:
            return {a.key for a in await client.read_artifacts()}

    import asyncio

    keys = asyncio.run(artifact_keys())
    assert {"render-progress", "train-progress", "evaluation-summary", "per-class-ap"} <= keys
    assert os.environ["SIMREAL_SHARED"].endswith("no-shared")
    assert_report_fit_to_share(run)
    # the same parameters again: the finished training run is kept, the report rebuilt
    checkpoint = (run / "checkpoints" / "last.pt").stat().st_mtime_ns
    again = render_then_train(tiny_pipeline(tmp_path))
    assert again["run_dir"] == result["run_dir"]
    assert (run / "checkpoints" / "last.pt").stat().st_mtime_ns == checkpoint


def assert_report_fit_to_share(run: Path) -> None:
    """No machine path in report.md / report.html, and CommonMark shows every image of report.md."""
    import re
    import sys

    import torch
    from markdown_it import MarkdownIt

    md, page = (run / "report.md").read_text(), (run / "report.html").read_text()
    page = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    machine = [str(run.parent), str(Path(__file__).resolve().parents[1]), sys.prefix, torch.hub.get_dir()]
    for text in (md, page):
        assert not [m for m in machine if m in text], [m for m in machine if m in text]
        assert not re.findall(r"(?<![\w.~:/-])/[A-Za-z][\w.-]*/[\w.-]", text)  # no absolute path at all
    assert "trained on" in md.splitlines()[1]  # the title names the model and the data
    tokens = [t for block in MarkdownIt("commonmark").parse(md) for t in (block.children or [])]
    images = [t.attrs["src"] for t in tokens if t.type == "image"]
    assert len(images) >= 3 and all((run / src).is_file() for src in images)


def test_commands_started_together_on_a_fresh_prefect_home_print_no_traceback(tmp_path):
    """Each command's ephemeral server migrates the one SQLite file; started together on a new PREFECT_HOME,
    unguarded servers raced in the migrations and block registration. The guard migrates once, under a lock."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    code = (
        "from flows.env import prepare_local_prefect; prepare_local_prefect()\n"
        "from prefect import flow\n"
        "print('result', flow(lambda: 7, name='together')())\n"
    )
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PYTHONPATH": str(repo)}
    env.pop("PREFECT_API_URL", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and "result 7" in out, err[-2000:]
        assert "Traceback" not in err, err[-2000:]
    assert list((tmp_path / "prefect-home").glob(".db-migrated-*"))
