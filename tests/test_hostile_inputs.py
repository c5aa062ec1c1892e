"""Hostile input as a new user would try it (issue 13): every case writes its own crafted input and ends in
one line ``simreal: error: <where>: <problem>``, exit code 2, nothing written or changed -- or in the
documented behaviour. Neighbours: hostile COCO in test_coco.py, mesh references and the face limit in
test_mesh_references.py, the output-folder lock and pixel determinism in test_dataset.py and
test_pyrender_backend.py."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
import yaml
from mesh_fixtures import colored_sphere, directory_snapshot, textured_part, write_stl, write_textured_obj
from render_scenes import make_tiny_catalog
from test_coco import _mutate
from test_mesh_references import write_gltf
from train_fixtures import make_shapes_coco, tiny_train_config

from flows import cli
from synth.catalog import Catalog
from synth.errors import ConfigError, SimrealError
from synth.sku import add_mesh
from train.evaluate import CHECKPOINT_FORMAT

TESTS_DIR = Path(__file__).resolve().parent


def refused(capsys, argv: list[str], where: str) -> str:
    """Run the CLI in this process: exit code 2 and exactly one line naming ``where``."""
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"simreal: error: {where}: "), err
    return lines[0]


# ---- render -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def render_config(tmp_path_factory) -> Path:
    """A small table config over a two-entry catalog of its own."""
    root = tmp_path_factory.mktemp("render")
    make_tiny_catalog(root / "catalog")
    cfg = {
        "image": {"width": 64, "height": 48},
        "catalog": {"root": str(root / "catalog"), "supercategory": "any"},
        "layout": {"kind": "table"},
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def render_argv(config: Path, out: Path, *extra) -> list:
    return ["render", "--config", config, "--n", 2, "--out", out, "--workers", 1, "--quiet", *extra]


def test_render_out_pointing_at_a_file(render_config, tmp_path, capsys):
    out = tmp_path / "afile"
    out.write_text("mine")
    refused(capsys, render_argv(render_config, out), str(out))
    refused(capsys, render_argv(render_config, out / "sub"), str(out / "sub"))
    assert out.read_text() == "mine"


@pytest.mark.parametrize(
    "backend,opts,problem",
    [
        ("pyrender", {"nonsense": 1}, "key 'nonsense': unknown key"),
        ("pyrender", {"antialias": "fxaa"}, "key 'antialias'"),
        ("pyrender", {"exposure": float("nan")}, "key 'exposure'"),
        ("cycles", {"sampels": 64}, "key 'sampels': unknown option"),
    ],
)
def test_render_backend_options_are_checked_before_anything_is_written(
    render_config, tmp_path, capsys, backend, opts, problem
):
    """In the parent, against the backend's own option list: no worker, no run.json, no folder."""
    line = refused(
        capsys,
        render_argv(render_config, tmp_path / "ds", "--backend", backend, "--backend-opts", json.dumps(opts)),
        f"backend {backend}",
    )
    assert problem in line
    assert not (tmp_path / "ds").exists()


# ---- sku add --------------------------------------------------------------------------------------------
@pytest.fixture
def stl(tmp_path) -> Path:
    return write_stl(tmp_path / "meshes" / "box.stl", trimesh.creation.box((0.05, 0.04, 0.03)))


def sku_add(mesh: Path, catalog: Path, *extra) -> list:
    return ["sku", "add", mesh, "--name", "Box", "--category", "box", "--catalog", catalog, *extra]


@pytest.mark.parametrize(
    "flags,where",
    [
        (["--metallic", "5"], "--metallic"),
        (["--roughness", "-0.5"], "--roughness"),
        (["--color", "nan", "nan", "nan"], "--color"),
        (["--color", "0.5", "inf", "0.5"], "--color"),
        (["--symmetry", "discrete"], "--symmetry"),
        (["--symmetry", "cylindrical", "--symmetry-order", "6"], "--symmetry"),
        (["--symmetry", "discrete", "--symmetry-order", "1"], "--symmetry"),
    ],
)
def test_sku_add_options_are_checked_before_the_mesh_is_read(stl, tmp_path, capsys, flags, where):
    before = directory_snapshot(tmp_path)
    refused(capsys, sku_add(stl, tmp_path / "catalog", *flags), where)
    assert directory_snapshot(tmp_path) == before


def test_sku_add_catalog_pointing_at_a_file(stl, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    before = directory_snapshot(tmp_path)
    refused(capsys, sku_add(stl, afile), str(afile))
    refused(capsys, sku_add(stl, afile / "catalog"), str(afile / "catalog"))
    assert directory_snapshot(tmp_path) == before


# ---- checkpoints: evaluate --model, train --resume ------------------------------------------------------
@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_shapes_coco(tmp_path_factory.mktemp("shapes") / "shapes", n_images=4, size=64)


@pytest.fixture(scope="module")
def checkpoint(shapes, tmp_path_factory) -> Path:
    """A real checkpoint of the tiny Mask R-CNN after one training step."""
    from train.config import TrainConfig
    from train.engine import train

    run = train(TrainConfig(**tiny_train_config(shapes, tmp_path_factory.mktemp("run") / "run", steps=1)))
    return run / "checkpoints" / "last.pt"


class _RunsCode:
    """Unpickling this runs a shell command: what a hostile checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _torch_bytes(obj) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def hostile_checkpoints(marker: Path) -> dict[str, bytes]:
    """Files a checkpoint path may hold, none of them usable."""
    fields = {
        "format": CHECKPOINT_FORMAT,
        "model": {},
        "config": {},
        "class_names": ["x"],
        "init_kind": "random",
    }
    return {
        "empty": b"",
        "random bytes": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "code in the pickle": _torch_bytes({"format": CHECKPOINT_FORMAT, "model": _RunsCode(marker)}),
        "a list": _torch_bytes([1, 2, 3]),
        "another format": _torch_bytes({"format": "yolo/5", "model": {}}),
        "fields of the wrong type": _torch_bytes({**fields, "model": 5, "class_names": "x"}),
        "fields missing": _torch_bytes({"format": CHECKPOINT_FORMAT}),
        "resume fields missing": _torch_bytes(fields),
        "a config that does not validate": _torch_bytes(
            {**fields, "config": {"steps": -1}, "step": 1, "optimizer": {}, "scheduler": {}}
            | {"domain_heads": {}, "weights_source": "x"}
        ),
    }


def test_evaluate_model_given_an_unusable_file(shapes, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    for name, data in hostile_checkpoints(marker).items():
        if name in ("resume fields missing", "a config that does not validate"):
            continue  # what evaluation does not need to read
        ckpt = tmp_path / f"{name}.pt"
        ckpt.write_bytes(data)
        refused(
            capsys, ["evaluate", "--model", ckpt, "--data", shapes, "--out", tmp_path / "eval"], str(ckpt)
        )
        assert not (tmp_path / "eval").exists()
    assert not marker.exists()


def test_train_resume_with_an_unusable_last_pt(shapes, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    for data in hostile_checkpoints(marker).values():
        last.write_bytes(data)
        before = directory_snapshot(tmp_path)
        argv = ["train", "--data", shapes, "--out", run, "--resume", "--model", "ssdlite", "--steps", 2]
        refused(capsys, argv, str(last))
        assert directory_snapshot(tmp_path) == before
    assert not marker.exists()


def test_train_resume_with_tensors_that_do_not_fit(checkpoint, shapes, tmp_path):
    """A checkpoint of the right format whose weights belong to another model: one line, nothing written."""
    from train.config import TrainConfig
    from train.engine import train

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    ckpt["model"] = {k: v[..., :1] if v.ndim else v for k, v in ckpt["model"].items()}
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    torch.save(ckpt, last)
    before = directory_snapshot(tmp_path)
    with pytest.raises(ConfigError, match="does not fit the model") as e:
        train(TrainConfig(**tiny_train_config(shapes, last.parents[1], steps=3, resume=True)))
    assert str(e.value).startswith(f"{last}: ") and "\n" not in str(e.value)
    assert directory_snapshot(tmp_path) == before


def test_evaluate_with_a_checkpoint_whose_config_or_weights_do_not_fit(checkpoint, shapes, tmp_path, capsys):
    """The right format, but a config that does not validate or tensors of another shape: one line."""
    good = torch.load(checkpoint, map_location="cpu", weights_only=True)
    cases = {
        "misfit.pt": {**good, "model": {k: v[..., :1] if v.ndim else v for k, v in good["model"].items()}},
        "badconfig.pt": {**good, "config": {**good["config"], "steps": -1}},
    }
    for name, ckpt in cases.items():
        path = tmp_path / name
        torch.save(ckpt, path)
        refused(
            capsys, ["evaluate", "--model", path, "--data", shapes, "--out", tmp_path / "eval"], str(path)
        )
        assert not (tmp_path / "eval").exists()


# ---- simreal run ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flags,where", [(["--n", "0"], "--n"), (["--steps", "0"], "--steps"), (["--workers", "0"], "--workers")]
)
def test_run_with_out_of_range_numbers(tmp_path, capsys, flags, where):
    refused(capsys, ["run", *flags, "--out", tmp_path / "run"], where)
    assert not (tmp_path / "run").exists()


# ---- leftovers of a killed sku add ----------------------------------------------------------------------
WRITER = """
import sys, time
from pathlib import Path
from synth.catalog import Catalog, SkuRecord, Source

def write_files(tmp: Path) -> None:
    (tmp / "mesh.glb").write_bytes(b"half a mesh")
    Path(sys.argv[3]).write_text(str(tmp))  # tell the test where we are, then stall like a slow import
    time.sleep(600)

record = SkuRecord(id=sys.argv[2], name=sys.argv[2], category="x", supercategory="retail",
                   size_m=(0.1, 0.1, 0.1), thumbnail=None, source=Source(kind="procedural", generator="test"))
Catalog(sys.argv[1]).add(record, write_files)
"""


def start_writer(tmp_path: Path, catalog: Path, sku_id: str) -> tuple[subprocess.Popen, Path]:
    """A catalog writer stalled inside its temporary entry folder; returns it and that folder."""
    script, ready = tmp_path / "writer.py", tmp_path / f"{sku_id}.ready"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(catalog), sku_id, str(ready)])
    deadline = time.time() + 120
    while not ready.exists():
        assert proc.poll() is None and time.time() < deadline, "the writer never reached its temp folder"
        time.sleep(0.02)
    return proc, Path(ready.read_text())


def test_kill_9_during_sku_add_leaves_a_temp_folder_that_the_next_write_removes(tmp_path, stl):
    catalog = tmp_path / "catalog"
    killed, stale = start_writer(tmp_path, catalog, "killed")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert stale.is_dir() and stale.name.startswith(".killed.") and stale.name.endswith(".tmp")
    assert Catalog(catalog).ids() == []  # a hidden half entry is never an entry
    live, busy = start_writer(tmp_path, catalog, "live")  # the next write: it sweeps before it starts
    try:
        assert not stale.exists(), "the killed writer's temp folder is removed by the next write"
        add_mesh(Catalog(catalog), stl, name="Box", category="box", thumbnail=False, echo=None)
        assert busy.is_dir() and (busy / "mesh.glb").is_file(), "a live writer's temp folder is left alone"
        assert Catalog(catalog).ids() == ["box"]
    finally:
        live.kill()
        live.wait()


def test_an_entry_set_aside_by_a_killed_replace_is_put_back(tmp_path, stl):
    """``--replace`` moves the old entry aside, then renames the new one in; killed in between, the next
    write restores the old entry rather than deleting the only copy."""
    catalog = Catalog(tmp_path / "catalog")
    add_mesh(catalog, stl, name="Box", category="box", thumbnail=False, echo=None)
    record = catalog.get("box")
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    entry = catalog.entry_dir("box")
    os.replace(entry, entry.with_name(f".box.old.{int(gone.stdout)}"))
    add_mesh(catalog, stl, name="Lid", category="lid", thumbnail=False, echo=None)
    assert catalog.ids() == ["box", "lid"] and catalog.get("box") == record
    assert not [p for p in catalog.root.iterdir() if p.name.startswith(".")]


# ---- fuzz: meshes ---------------------------------------------------------------------------------------
def mesh_sources(root: Path) -> list[Path]:
    """One small valid file per importer path: textured OBJ, STL, PLY with colours, glTF, GLB."""
    glb = root / "glb" / "part.glb"
    glb.parent.mkdir(parents=True)
    glb.write_bytes(textured_part((0.05, 0.04, 0.03), (200, 30, 30), (16, 16)).export(file_type="glb"))
    ply = root / "ply" / "sphere.ply"
    ply.parent.mkdir(parents=True)
    ply.write_bytes(colored_sphere().export(file_type="ply", encoding="ascii"))
    stl = root / "stl" / "box.stl"
    stl.parent.mkdir(parents=True)
    stl.write_bytes(trimesh.creation.box((5.0, 4.0, 3.0)).export(file_type="stl_ascii").encode())
    return [write_textured_obj(root / "obj"), stl, ply, write_gltf(root / "gltf"), glb]


def mutate_text(rng: np.random.Generator, text: str) -> str:
    """A line dropped or repeated, a number made NaN / huge / negative, a reference sent outside."""
    lines = text.splitlines()
    k = int(rng.integers(len(lines)))
    words = lines[k].split()
    op = int(rng.integers(4))
    if op == 0:
        del lines[k]
    elif op == 1:
        lines.insert(k, lines[k])
    elif words:
        junk = ["nan", "-inf", "1e308", "-1", "0", "4294967295", "/etc/passwd", "../../x.png", "", "x"]
        words[int(rng.integers(len(words)))] = str(rng.choice(junk))
        lines[k] = " ".join(words)
    return "\n".join(lines) + "\n"


def mutate_bytes(rng: np.random.Generator, data: bytes) -> bytes:
    """Bytes flipped, or the file cut short."""
    buf = bytearray(data)
    if rng.random() < 0.3:
        return bytes(buf[: int(rng.integers(len(buf)))])
    for _ in range(int(rng.integers(1, 8))):
        buf[int(rng.integers(len(buf)))] = int(rng.integers(256))
    return bytes(buf)


def mutate_file(rng: np.random.Generator, path: Path) -> None:
    data = path.read_bytes()
    if path.suffix == ".gltf":
        tree = json.loads(data)
        for _ in range(int(rng.integers(1, 3))):
            _mutate(rng, tree)
        path.write_text(json.dumps(tree))
    elif path.suffix in (".obj", ".mtl", ".ply", ".stl"):
        path.write_text(mutate_text(rng, data.decode("utf-8", errors="replace")))
    else:
        path.write_bytes(mutate_bytes(rng, data))


@pytest.mark.timeout(600)  # a hang guard: no mutated file may stall the importer (under a minute)
def test_mutated_meshes_import_or_fail_with_one_line_and_leave_the_catalog_alone(tmp_path):
    import shutil

    rng = np.random.default_rng(13)
    sources = mesh_sources(tmp_path / "sources")
    catalog = Catalog(tmp_path / "catalog")
    outcomes = {"imported": 0, "refused": 0}
    for k in range(300):
        source = sources[k % len(sources)]
        work = tmp_path / "work"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(source.parent, work)
        files = sorted(p for p in work.iterdir() if p.is_file())
        for _ in range(int(rng.integers(1, 3))):
            mutate_file(rng, files[int(rng.integers(len(files)))])
        before = directory_snapshot(catalog.root)
        try:
            add_mesh(catalog, work / source.name, name=f"m{k}", category="x", thumbnail=False, echo=None)
        except SimrealError as e:
            assert "\n" not in str(e)
            assert directory_snapshot(catalog.root) == before, f"case {k} changed the catalog"
            outcomes["refused"] += 1
        else:
            outcomes["imported"] += 1
    assert outcomes["imported"] > 30 and outcomes["refused"] > 30, outcomes  # both outcomes are reached


# ---- fuzz: COCO through the CLI -------------------------------------------------------------------------
def mutated_sets(shapes: Path, n: int, seed: int) -> list[Path]:
    """``n`` copies of the set's annotations with one random corruption each, beside its images."""
    rng = np.random.default_rng(seed)
    base = json.loads((shapes / "annotations.json").read_text())
    paths = []
    for k in range(n):
        coco = copy.deepcopy(base)
        _mutate(rng, coco)
        path = shapes / f"fuzz-{seed}-{k}.json"
        path.write_text(json.dumps(coco))
        paths.append(path)
    return paths


def assert_clean_exit(code: int, err: str) -> None:
    assert code in (0, 2) and "Traceback" not in err, err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("simreal: error: "), err


def test_mutated_coco_through_evaluate_and_train_ends_in_0_or_2(checkpoint, shapes, tmp_path, capsys):
    codes = []
    for k, path in enumerate(mutated_sets(shapes, 10, seed=4)):
        out = tmp_path / f"e{k}"
        argv = [
            "evaluate",
            "--model",
            checkpoint,
            "--data",
            path,
            "--out",
            out,
            "--workers",
            0,
            "--no-progress",
        ]
        codes.append(cli.main([str(a) for a in argv]))
        assert_clean_exit(codes[-1], capsys.readouterr().err)
    for k, path in enumerate(mutated_sets(shapes, 3, seed=25)):
        cfg = tmp_path / f"t{k}.yaml"
        cfg.write_text(yaml.safe_dump(tiny_train_config(path, tmp_path / f"t{k}", steps=1)))
        codes.append(cli.main(["train", "--config", str(cfg)]))
        assert_clean_exit(codes[-1], capsys.readouterr().err)
    assert sorted(set(codes)) == [0, 2], codes  # the sample reaches both outcomes


@pytest.mark.slow
def test_mutated_coco_through_the_console_script(checkpoint, shapes, tmp_path):
    for k, path in enumerate(mutated_sets(shapes, 2, seed=36)):
        r = subprocess.run(
            [sys.executable, "-m", "flows.cli", "evaluate", "--model", str(checkpoint), "--data", str(path)]
            + ["--out", str(tmp_path / f"e{k}"), "--workers", "0", "--no-progress"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert_clean_exit(r.returncode, r.stderr)
