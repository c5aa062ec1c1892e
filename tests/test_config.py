"""Render config files: the shipped ones load and build scenes; bad ones are one-line errors naming the
file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from randomize_helpers import make_catalog

from synth.config import config_hash
from synth.errors import ConfigError
from synth.randomize import build_scene, load_render_config, target_categories
from synth.randomize.settings import RenderConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHIPPED = ["retail_shelf.yaml", "retail_table.yaml", "industrial_bin.yaml"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return make_catalog(tmp_path_factory.mktemp("catalog"))


def write(tmp_path: Path, data, name: str = "render.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_render_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


# ---- the shipped configs -------------------------------------------------------------------------------
def test_every_config_in_configs_is_covered():
    render_configs = sorted(
        p.name for p in CONFIGS.glob("*.yaml") if "layout" in yaml.safe_load(p.read_text())
    )
    assert set(SHIPPED) <= set(render_configs)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load_and_build_scenes(name, catalog, tmp_path):
    cfg = load_render_config(CONFIGS / name)
    assert cfg.source == str(CONFIGS / name)
    # the same file pointed at a test catalog builds real scenes
    data = yaml.safe_load((CONFIGS / name).read_text())
    data["catalog"]["root"] = str(catalog.root)
    local = load_render_config(write(tmp_path, data, name))
    scene = build_scene(local, catalog, 0, 0)
    assert scene.targets()
    assert {o.category for o in scene.targets()} <= set(target_categories(local, catalog))
    assert scene.camera.width == data["image"]["width"]


OPTIONAL_IN_FILES = {"camera": {"znear", "zfar", "fill"}, "objects": {"count"}}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_show_every_setting(name):
    """The shipped files are the documentation: every key of every section appears, with a comment."""
    text = (CONFIGS / name).read_text()
    data = yaml.safe_load(text)
    cfg = load_render_config(CONFIGS / name)
    for section, value in cfg:
        unused = set(OPTIONAL_IN_FILES.get(section, set()))
        if section == "lighting":  # keys of the other placement mode do nothing
            unused |= (
                {"box_min", "box_max"}
                if value.placement == "hemisphere"
                else {"distance", "elevation_deg", "azimuth_deg"}
            )
        fields = set(type(value).model_fields) - unused
        missing = fields - set(data.get(section, {}))
        assert not missing, f"{name}: section {section} does not show {sorted(missing)}"
    commented = [line for line in text.splitlines() if line.startswith("  ") and "#" in line]
    assert len(commented) >= 25


def test_config_hash_ignores_formatting_but_not_values(tmp_path):
    a = load_render_config(write(tmp_path, {"layout": {"kind": "bin"}}, "a.yaml"))
    b = load_render_config(write(tmp_path, "# comment\nlayout:   {kind: bin, piles: [1, 3]}\n", "b.yaml"))
    c = load_render_config(write(tmp_path, {"layout": {"kind": "bin", "piles": [1, 4]}}, "c.yaml"))
    assert config_hash(a) == config_hash(b) != config_hash(c)


# ---- conveniences --------------------------------------------------------------------------------------
def test_a_number_stands_for_a_fixed_range(tmp_path):
    cfg = load_render_config(
        write(tmp_path, {"layout": {"kind": "shelf", "levels": 4}, "camera": {"roll_deg": 0}})
    )
    assert cfg.layout.levels == (4, 4)
    assert cfg.camera.roll_deg == (0.0, 0.0)


def test_layout_kind_picks_section_defaults_and_file_keys_win(tmp_path):
    shelf = load_render_config(write(tmp_path, {"layout": {"kind": "shelf"}}, "s.yaml"))
    binned = load_render_config(
        write(tmp_path, {"layout": {"kind": "bin"}, "camera": {"roll_deg": [0, 0]}}, "b.yaml")
    )
    assert shelf.lighting.placement == "box" and shelf.camera.elevation_deg[1] < 30
    assert binned.camera.elevation_deg == (55.0, 90.0)  # top-down-ish by default
    assert binned.camera.roll_deg == (0.0, 0.0)  # the file's key wins
    assert binned.camera.fill is not None


def test_parsed_config_is_plain_data():
    cfg = RenderConfig.model_validate({"layout": {"kind": "table"}})
    again = RenderConfig.model_validate_json(cfg.model_dump_json())
    assert again == cfg


# ---- errors --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data,needle",
    [
        ({"layout": {"kind": "shelf"}, "lightning": {}}, "key 'lightning': unknown key"),
        ({"layout": {"kind": "shelf", "levles": [2, 3]}}, "key 'layout.levles': unknown key"),
        ({"layout": {"kind": "table"}, "camera": {"yfov": 50}}, "key 'camera.yfov': unknown key"),
        ({"layout": {"kind": "shelf", "levels": "many"}}, "key 'layout.levels"),
        ({"layout": {"kind": "bin"}, "objects": {"count": [5, "x"]}}, "key 'objects.count.1'"),
        (
            {"layout": {"kind": "shelf", "gap_probability": 1.5}},
            "key 'layout.gap_probability': Input should be less",
        ),
        ({"layout": {"kind": "table"}, "camera": {"yfov_deg": [30, 170]}}, "key 'camera.yfov_deg.1'"),
        (
            {"layout": {"kind": "bin"}, "lighting": {"temperature_k": [6500, 2700]}},
            "key 'lighting.temperature_k': Value error, range [6500.0, 2700.0] has its minimum above its maximum",
        ),
        (
            {"layout": {"kind": "pyramid"}},
            "key 'layout.kind': unknown layout kind 'pyramid' (expected one of",
        ),
        ({"layout": {"levels": 3}}, "key 'layout.kind': missing (expected one of: shelf, table, bin)"),
        ({"image": {"width": 640}}, "key 'layout': Field required"),
        (
            {"layout": {"kind": "bin", "container": {"bin": 0, "tray": 0}}},
            "key 'layout': Value error, container",
        ),
        ({"layout": {"kind": "bin", "container": {"crate": 1}}}, "key 'layout.container.crate'"),
        (
            {"layout": {"kind": "table"}, "materials": {"mode": "photoreal"}},
            "key 'materials.mode': Input should be",
        ),
        ({"layout": {"kind": "table"}, "objects": {"weights": {"a": -1}}}, "key 'objects.weights.a'"),
        (
            {"layout": {"kind": "table"}, "lighting": {"kinds": {"laser": 1}}},
            "key 'lighting.kinds.laser': not an allowed key: Input should be 'point'",
        ),
        ({"layout": {"kind": "table"}, "output": {"jpeg_quality": 20}}, "key 'output.jpeg_quality'"),
        (
            {"layout": {"kind": "table"}, "lighting": {"box_min": [0, 0, 2], "box_max": [1, 1, 1]}},
            "key 'lighting': Value error, box_min must not exceed box_max",
        ),
        ({"layout": {"kind": "shelf", "yaw_jitter_deg": float("nan")}}, "key 'layout.yaw_jitter_deg'"),
    ],
)
def test_bad_values_are_one_line_errors_naming_file_and_key(tmp_path, data, needle):
    message = error_of(write(tmp_path, data))
    assert needle in message, message


def test_unreadable_files(tmp_path):
    assert error_of(tmp_path / "missing.yaml").endswith("config file not found")
    assert "not valid YAML at line 3: expected ',' or ']'" in error_of(
        write(tmp_path, "layout:\n  kind: [shelf\n", "bad.yaml")
    )
    assert "top level must be a mapping" in error_of(write(tmp_path, "- a\n- b\n", "list.yaml"))
    # no arbitrary object construction: python tags are rejected by the safe loader
    evil = "layout: !!python/object/apply:os.system ['echo pwned']\n"
    assert "not valid YAML" in error_of(write(tmp_path, evil, "evil.yaml"))


def test_photos_dir_must_exist_and_hold_images(tmp_path):
    missing = error_of(write(tmp_path, {"layout": {"kind": "bin"}, "background": {"photos_dir": "/no/such"}}))
    assert "key 'background.photos_dir': folder not found: /no/such" in missing
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    message = error_of(
        write(tmp_path, {"layout": {"kind": "bin"}, "background": {"photos_dir": str(empty)}}, "e.yaml")
    )
    assert "key 'background.photos_dir': no .jpg" in message


def test_catalog_problems_surface_at_build_time_with_the_key(tmp_path, catalog):
    cfg = load_render_config(
        write(tmp_path, {"layout": {"kind": "bin"}, "catalog": {"root": str(tmp_path / "x")}})
    )
    with pytest.raises(ConfigError, match=r"render.yaml: key 'catalog.root': catalog folder not found"):
        build_scene(cfg, catalog.__class__(tmp_path / "x"), 0, 0)
    retail_only = make_catalog(
        tmp_path / "retail", entries=[("a-box", "box", "retail", "box", (0.1, 0.1, 0.1))]
    )
    cfg = load_render_config(
        write(
            tmp_path,
            {
                "layout": {"kind": "bin"},
                "catalog": {"root": str(retail_only.root), "supercategory": "industrial"},
            },
            "i.yaml",
        )
    )
    with pytest.raises(ConfigError, match=r"i.yaml: key 'catalog': no catalog entry matches the selection"):
        build_scene(cfg, retail_only, 0, 0)
