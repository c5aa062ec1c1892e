"""synth.dataset: sharded rendering in worker processes, merge, determinism, kill -9 resume, one run per
folder, worker errors, COCO validity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from render_scenes import CATEGORIES, RenderService, TinyRenderConfig, build_tiny_scene, make_tiny_catalog

from synth.catalog import Catalog
from synth.coco import CocoValidationError, validate_coco
from synth.config import CatalogSelection, OutputConfig
from synth.dataset import OutputBusyError, make_plan, merge_shards, render_dataset, render_shard
from synth.dataset.layout import SHARD_SUBDIRS, image_stem, shard_path
from synth.dataset.worker import plan_backend, render_with
from synth.errors import AssetError, ConfigError, SimrealError

N = 6
SEED = 11
TESTS_DIR = Path(__file__).resolve().parent


def tiny_config(catalog_root: Path, **output) -> TinyRenderConfig:
    return TinyRenderConfig(
        catalog=CatalogSelection(root=str(catalog_root)),
        output=OutputConfig(shard_size=2, **output),
        objects=5,
    )


def render(cfg, out, workers, seed=SEED, n=N):
    return render_dataset(
        cfg,
        n,
        out,
        seed=seed,
        workers=workers,
        scene_builder=build_tiny_scene,
        categories=CATEGORIES,
        progress=False,
    )


def dataset_bytes(root: Path) -> dict[str, bytes]:
    """Every file of a dataset except the measurements (timings.json, manifest timings)."""
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "timings.json" and "viz" not in p.parts:
            rel = p.relative_to(root).as_posix()
            data = p.read_bytes()
            if p.name == "manifest.json":
                manifest = json.loads(data)
                manifest.pop("timings")
                data = json.dumps(manifest, sort_keys=True).encode()
            files[rel] = data
    return files


@pytest.fixture(scope="module")
def catalog_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalog") / "catalog"
    make_tiny_catalog(root)
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory, catalog_root):
    """The uninterrupted dataset, rendered with 2 worker processes."""
    out = tmp_path_factory.mktemp("reference") / "ds"
    path = render(tiny_config(catalog_root), out, workers=2)
    return path.parent


def test_dataset_layout_manifest_and_coco(reference):
    counts = validate_coco(reference / "annotations.json")
    assert counts["images"] == N and counts["categories"] == len(CATEGORIES) and counts["annotations"] > N
    coco = json.loads((reference / "annotations.json").read_text())
    assert [im["id"] for im in coco["images"]] == list(range(1, N + 1))
    assert [a["id"] for a in coco["annotations"]] == list(range(1, len(coco["annotations"]) + 1))
    assert [c["name"] for c in coco["categories"]] == CATEGORIES and coco["categories"][0]["id"] == 1
    first = coco["images"][0]
    assert first["file_name"] == "shards/shard-00000/images/000000.jpg"
    for key in ("file_name", "depth_file", "scene_file"):
        assert (reference / first[key]).is_file()
    for a in coco["annotations"]:
        assert isinstance(a["segmentation"]["counts"], str) and 0 < a["visibility"] <= 1
        assert a["amodal_area"] >= a["area"] > 0
    for s in range(3):
        assert (reference / "shards" / f"shard-{s:05d}" / "coco.json").is_file()

    import cv2
    import numpy as np

    depth = cv2.imread(str(reference / first["depth_file"]), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (96, 128)
    assert 300 < np.median(depth[depth > 0]) < 3000, "millimetres"

    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["seed"] == SEED and manifest["n"] == N and manifest["backend"] == "pyrender"
    assert manifest["counts"]["annotations"] == len(coco["annotations"])
    assert sum(manifest["counts"]["per_category"].values()) == len(coco["annotations"])
    assert manifest["dropped"]["total"] == len(manifest["dropped"]["objects"])
    assert sum(manifest["dropped"]["by_reason"].values()) == manifest["dropped"]["total"]
    assert {"numpy", "pyrender", "pycocotools"} <= set(manifest["versions"])
    t = manifest["timings"]
    assert t["images_timed"] == N and {"scene", "render", "annotate", "encode", "write"} <= set(
        t["ms_per_image"]
    )
    assert t["last_run"]["workers"] == 2 and t["last_run"]["images_rendered"] == N


def test_same_config_and_seed_give_identical_bytes_for_any_worker_count(reference, tmp_path, catalog_root):
    again = render(tiny_config(catalog_root), tmp_path / "ds", workers=1).parent
    ref, new = dataset_bytes(reference), dataset_bytes(again)
    assert sorted(ref) == sorted(new)
    assert [k for k in ref if ref[k] != new[k]] == []


def _render_in_order(cfg, indices: list[int], out: str) -> None:
    """In the calling worker process: images ``indices`` of the dataset, in that order, with one backend."""
    plan = make_plan(cfg, N, SEED, scene_builder=build_tiny_scene, categories=CATEGORIES)
    for sub in SHARD_SUBDIRS:
        (Path(out) / sub).mkdir(parents=True, exist_ok=True)
    render_with(plan, plan_backend(plan), Catalog(cfg.catalog.root), indices, Path(out))


def test_an_image_does_not_depend_on_what_its_worker_did_before(
    reference, tmp_path, catalog_root, monkeypatch
):
    """The last image alone in a fresh process with cold shader caches, then every image in reverse order
    in one process with warm caches (each with another hash seed, which moves pyrender's node sets
    around): the bytes of the reference, whose two workers rendered the images in increasing order."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))  # Mesa's shader cache starts empty
    monkeypatch.delenv("MESA_SHADER_CACHE_DIR", raising=False)
    for name, indices, hash_seed in (("alone", [N - 1], "1"), ("reversed", list(range(N))[::-1], "2")):
        monkeypatch.setenv("PYTHONHASHSEED", hash_seed)
        service = RenderService()  # a fresh process
        try:
            service.call(_render_in_order, tiny_config(catalog_root), indices, str(tmp_path / name))
        finally:
            service.close()
        for i in indices:
            shard = shard_path(reference, i // 2)
            for rel in (
                f"images/{image_stem(i)}.jpg",
                f"depth/{image_stem(i)}.png",
                f"scenes/{image_stem(i)}.json",
            ):
                assert (tmp_path / name / rel).read_bytes() == (shard / rel).read_bytes(), (name, rel)
        if name == "alone":
            assert any(cache.rglob("*")), "the next run starts with a warm shader cache"
    assert not (cache / "simreal").exists(), "no shader files shared between workers"


def test_another_seed_gives_another_dataset_and_cannot_reuse_the_directory(reference, catalog_root):
    with pytest.raises(ConfigError, match="different seed"):
        render(tiny_config(catalog_root), reference, workers=1, seed=SEED + 1)
    with pytest.raises(ConfigError, match="different config_hash"):
        render(tiny_config(catalog_root, image_format="png"), reference, workers=1)


def test_a_run_records_every_backend_option_and_refuses_to_mix_two_looks(reference, catalog_root):
    """The reference was rendered with the defaults; the same run with another anti-aliasing, or a run that
    only spells out a default, is told apart by the options recorded with their defaults filled in."""
    run = json.loads((reference / "run.json").read_text())
    assert run["backend_opts"]["antialias"] == "edge" and "shadows" in run["backend_opts"]
    spelled = make_plan(
        tiny_config(catalog_root), N, SEED, "pyrender", {"antialias": "edge"}, build_tiny_scene, CATEGORIES
    )
    assert spelled.identity()["backend_opts"] == run["backend_opts"]
    with pytest.raises(ConfigError, match="different backend_opts"):
        render_dataset(
            tiny_config(catalog_root),
            N,
            reference,
            seed=SEED,
            workers=1,
            backend_opts={"antialias": "msaa"},
            scene_builder=build_tiny_scene,
            categories=CATEGORIES,
            progress=False,
        )


RENDER_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from render_scenes import CATEGORIES, build_tiny_scene
from test_dataset import tiny_config
from synth.dataset import render_dataset
if __name__ == "__main__":
    render_dataset(tiny_config({catalog!r}), {n}, {out!r}, seed={seed}, workers=1,
                   scene_builder=build_tiny_scene, categories=CATEGORIES, progress=False)
"""


def start_render_process(tmp_path: Path, catalog_root: Path, out: Path) -> subprocess.Popen:
    """The reference render into ``out`` as a separate command, in its own process group."""
    script = tmp_path / "run.py"
    script.write_text(
        RENDER_SCRIPT.format(tests=str(TESTS_DIR), catalog=str(catalog_root), n=N, out=str(out), seed=SEED)
    )
    return subprocess.Popen(
        [sys.executable, str(script)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_until(ready, proc: subprocess.Popen, what: str) -> None:
    deadline = time.time() + 120
    while not ready():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, f"{what} never happened"
        time.sleep(0.02)


def assert_same_dataset(reference: Path, out: Path) -> None:
    ref, new = dataset_bytes(reference), dataset_bytes(out)
    assert sorted(ref) == sorted(new)
    assert [k for k in ref if ref[k] != new[k]] == []


@pytest.mark.slow
def test_resume_after_kill_9_is_byte_identical(reference, tmp_path, catalog_root):
    out = tmp_path / "ds"
    proc = start_render_process(tmp_path, catalog_root, out)
    try:
        wait_until((out / "shards" / "shard-00000" / "coco.json").exists, proc, "the first shard")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the render command and its worker process, like a crash
        proc.wait()
    finished = [s for s in range(3) if (out / "shards" / f"shard-{s:05d}" / "coco.json").exists()]
    assert finished and len(finished) < 3, "killed after the first shard and before the last"
    assert not (out / "annotations.json").exists()
    assert (out / ".lock").read_text().strip() == str(proc.pid), "the dead run's lock is left behind"
    # leave some debris a crash could leave: a half shard and a temp file
    junk = out / "shards" / "shard-00002"
    (junk / "images").mkdir(parents=True, exist_ok=True)
    (junk / "images" / ".000004.jpg.123.tmp").write_bytes(b"half")
    reused_before = {
        s: (out / "shards" / f"shard-{s:05d}" / "coco.json").stat().st_mtime_ns for s in finished
    }

    render(tiny_config(catalog_root), out, workers=1)  # takes the dead run's lock over
    for s, stamp in reused_before.items():  # finished shards were kept, not re-rendered
        assert (out / "shards" / f"shard-{s:05d}" / "coco.json").stat().st_mtime_ns == stamp
    assert_same_dataset(reference, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["timings"]["last_run"]["shards_reused"] == len(finished)
    assert not (out / ".lock").exists()


@pytest.mark.slow
def test_a_second_run_into_the_same_folder_is_refused(reference, tmp_path, catalog_root):
    out = tmp_path / "ds"
    proc = start_render_process(tmp_path, catalog_root, out)
    try:
        lock = out / ".lock"
        wait_until(lambda: lock.is_file() and lock.read_text().strip(), proc, "taking the lock")
        with pytest.raises(
            OutputBusyError, match=rf"ds: is being rendered by another run \(pid {proc.pid}\)$"
        ):
            render(tiny_config(catalog_root), out, workers=1)
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert_same_dataset(reference, out)  # the first run finished intact
    assert not (out / ".lock").exists()


def scene_failing_on_image_1(cfg, catalog, seed, index):
    if index == 1:
        raise AssetError("mesh.glb", "cannot be read")
    return build_tiny_scene(cfg, catalog, seed, index)


def scene_killing_its_worker(cfg, catalog, seed, index):
    os._exit(3)


def test_worker_failures_are_one_line_errors(tmp_path, catalog_root):
    cfg = tiny_config(catalog_root)
    for builder, error, message in (
        (scene_failing_on_image_1, AssetError, r"^mesh.glb: cannot be read \(image 1\)$"),
        (
            scene_killing_its_worker,
            SimrealError,
            r"a render worker died .*; re-run the same command to resume$",
        ),
    ):
        out = tmp_path / builder.__name__
        with pytest.raises(error, match=message):
            render_dataset(
                cfg, 2, out, seed=SEED, scene_builder=builder, categories=CATEGORIES, progress=False
            )
        assert not (out / ".lock").exists() and not (out / "annotations.json").exists()


def test_render_shard_per_process_then_merge(reference, tmp_path, catalog_root):
    """The Prefect path: shards rendered independently (here in a spawned process), merged at the end."""
    out = tmp_path / "ds"
    cfg = tiny_config(catalog_root)
    with pytest.raises(ConfigError, match="not a simreal dataset"):
        merge_shards(tmp_path)
    service = RenderService()
    try:
        for shard in (2, 0):  # any order
            service.call(_render_one_shard, cfg, shard, str(out))
        with pytest.raises(ConfigError, match="shard-00001: shard is not finished"):
            merge_shards(out)
        service.call(_render_one_shard, cfg, 1, str(out))
    finally:
        service.close()
    path = merge_shards(out)
    assert path.read_bytes() == (reference / "annotations.json").read_bytes()


def _render_one_shard(cfg, shard, out):
    return render_shard(cfg, shard, N, out, SEED, scene_builder=build_tiny_scene, categories=CATEGORIES)


def write_coco(tmp_path, **changes) -> Path:
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [0, 0, 2, 1],
                "area": 2,
                "iscrowd": 0,
                "segmentation": {"size": [3, 4], "counts": [0, 1, 2, 1, 8]},
            }
        ],
        "categories": [{"id": 1, "name": "x"}],
    }
    for key, value in changes.items():
        coco[key] = value
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    return path


def test_validate_coco_rejects_what_training_cannot_use(tmp_path):
    ok = write_coco(tmp_path)
    assert validate_coco(ok, check_files=False) == {"images": 1, "annotations": 1, "categories": 1}
    ann = json.loads(ok.read_text())["annotations"][0]
    bad_cases = {
        "category ids must be integers >= 1": {
            "categories": [{"id": 0, "name": "x"}],
            "annotations": [{**ann, "category_id": 0}],
        },
        "duplicate annotation id": {"annotations": [ann, ann]},
        "zero area": {"annotations": [{**ann, "area": 0}]},
        "empty bbox": {"annotations": [{**ann, "bbox": [0, 0, 0, 1]}]},
        "duplicate image id": {"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}] * 2},
        "mask has 2 pixels but area says 3": {"annotations": [{**ann, "area": 3}]},
        "does not match its mask": {"annotations": [{**ann, "bbox": [0, 0, 3, 1]}]},
        "unknown category": {"annotations": [{**ann, "category_id": 7}]},
    }
    for message, change in bad_cases.items():
        with pytest.raises(CocoValidationError, match=message):
            validate_coco(write_coco(tmp_path, **change), check_files=False)
    with pytest.raises(CocoValidationError, match="a.jpg does not exist"):
        validate_coco(write_coco(tmp_path))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(CocoValidationError, match="cannot read JSON"):
        validate_coco(tmp_path / "broken.json")


def test_bad_arguments_are_one_line_errors(tmp_path, catalog_root):
    cfg = tiny_config(catalog_root)
    with pytest.raises(ConfigError, match="workers"):
        render_dataset(
            cfg, 2, tmp_path / "a", workers=0, scene_builder=build_tiny_scene, categories=CATEGORIES
        )
    with pytest.raises(ConfigError, match="n: must be an integer >= 1"):
        render_dataset(cfg, 0, tmp_path / "a", scene_builder=build_tiny_scene, categories=CATEGORIES)
    with pytest.raises(ConfigError, match="unknown backend"):
        render_dataset(
            cfg, 1, tmp_path / "a", backend="povray", scene_builder=build_tiny_scene, categories=CATEGORIES
        )
    with pytest.raises(ConfigError, match="explicit category list"):
        render_dataset(cfg, 1, tmp_path / "a", scene_builder=build_tiny_scene)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a simreal dataset"):
        render(cfg, tmp_path / "b", workers=1)


def test_viz_and_stats_commands_on_the_dataset(reference, tmp_path):
    import argparse

    import cv2

    from flows.cli import data as data_cli
    from flows.cli import render as render_cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    for add in (data_cli.add_viz_parser, data_cli.add_stats_parser, render_cli.add_render_parser):
        assert "example" in add(sub).format_help()
    bench_sub = sub.add_parser("bench").add_subparsers()
    assert "example" in render_cli.add_bench_render_parser(bench_sub).format_help()
    args = parser.parse_args(
        ["viz", str(reference), "--out", str(tmp_path / "viz"), "--per-sheet", "4", "--columns", "2"]
    )
    assert args.func(args) == 0
    sheets = sorted((tmp_path / "viz").glob("sheet-*.png"))
    assert len(sheets) == 2  # 6 images, 4 per sheet
    img = cv2.imread(str(sheets[0]))
    assert img.shape[1] == 2 * (320 + 4) + 4 and img.std() > 10

    args = parser.parse_args(["stats", str(reference), "--out", str(tmp_path / "stats")])
    assert args.func(args) == 0
    stats = json.loads((tmp_path / "stats" / "stats.json").read_text())
    manifest = json.loads((reference / "manifest.json").read_text())
    assert stats["annotations"] == manifest["counts"]["annotations"]
    assert stats["objects_per_class"] == manifest["counts"]["per_category"]
    assert sum(stats["visibility"]["histogram"]) == stats["annotations"]
    for name in ("objects_per_class", "objects_per_image", "box_sizes", "visibility"):
        assert (tmp_path / "stats" / f"{name}.png").stat().st_size > 1000


def test_the_steady_rate_starts_once_every_worker_has_delivered(monkeypatch, tmp_path):
    """Two workers that start after 5 s and then return 4 images per second each: 8 img/s steady. Counted
    from the first returned unit, the second worker's nearly finished unit would add 4 images for free."""
    from concurrent.futures import Future

    from synth.dataset import run as run_mod

    clock = {"t": 0.0}
    monkeypatch.setattr(run_mod.time, "perf_counter", lambda: clock["t"])
    monkeypatch.setattr(run_mod, "new_shard_dir", lambda out, s: tmp_path)
    monkeypatch.setattr(run_mod, "finish_shard", lambda *a: None)

    class Plan:
        num_shards = 1

        def shard_indices(self, s):
            return range(40)

    def submit(fn, plan, out, s, idx):
        f = Future()
        f.set_result([object()] * len(idx))
        return f

    done_at = [5.0 + k // 2 + 0.1 * (k % 2) for k in range(10)]  # the two workers alternate, 0.1 s apart

    def as_completed(futures):
        for f, t in zip(futures, done_at, strict=True):
            clock["t"] = t
            yield f

    units = [(0, list(range(k, k + 4))) for k in range(0, 40, 4)]
    facts = run_mod._fan_out(Plan(), tmp_path, units, submit, as_completed, None, workers=2)
    assert facts["first_results_s"] == 5.0
    assert facts["steady_images_per_s"] == pytest.approx(32 / (9.1 - 5.1))
