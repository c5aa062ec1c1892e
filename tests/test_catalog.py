"""Catalog records and the atomic entry write, independent of any mesh importer."""

from __future__ import annotations

import pytest
import yaml

from synth.catalog import Catalog, SkuRecord, Source, load_record, slugify
from synth.errors import AssetError


def _record(**kw) -> SkuRecord:
    base = dict(
        id="test-box",
        name="Test box",
        category="box",
        supercategory="retail",
        size_m=(0.1, 0.05, 0.2),
        source=Source(kind="procedural", generator="box", seed=1),
    )
    base.update(kw)
    return SkuRecord(**base)


def _write_mesh(tmp):
    (tmp / "mesh.glb").write_bytes(b"glTF-test")
    (tmp / "thumbnail.png").write_bytes(b"png")


def test_add_get_roundtrip(tmp_path):
    cat = Catalog(tmp_path / "cat")
    cat.add(_record(), _write_mesh)
    assert cat.ids() == ["test-box"]
    rec = cat.get("test-box")
    assert rec.size_m == (0.1, 0.05, 0.2)
    assert cat.mesh_path(rec).read_bytes() == b"glTF-test"
    assert yaml.safe_load((tmp_path / "cat" / "test-box" / "sku.yaml").read_text())["category"] == "box"


def test_failed_write_leaves_no_entry(tmp_path):
    cat = Catalog(tmp_path / "cat")

    def boom(tmp):
        (tmp / "mesh.glb").write_bytes(b"partial")
        raise AssetError("x.obj", "broken")

    with pytest.raises(AssetError):
        cat.add(_record(), boom)
    assert cat.ids() == []
    assert list((tmp_path / "cat").iterdir()) == []


def test_duplicate_without_replace_is_refused(tmp_path):
    cat = Catalog(tmp_path / "cat")
    cat.add(_record(), _write_mesh)
    with pytest.raises(AssetError, match="already exists"):
        cat.add(_record(), _write_mesh)
    cat.add(_record(name="Renamed"), _write_mesh, replace=True)
    assert cat.get("test-box").name == "Renamed"
    assert cat.ids() == ["test-box"]


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("id", "Bad Id!", "id"),
        ("size_m", (0.1, 0.1, 5000.0), "size_m"),
        ("supercategory", "food", "supercategory"),
        ("category", "", "category"),
    ],
)
def test_invalid_record_file_is_one_line_error(tmp_path, field, value, needle):
    data = _record().model_dump(mode="json")
    data[field] = list(value) if isinstance(value, tuple) else value
    p = tmp_path / "sku.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(AssetError) as e:
        load_record(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and needle in msg


def test_unknown_key_rejected(tmp_path):
    data = _record().model_dump(mode="json")
    data["colour"] = "red"
    p = tmp_path / "sku.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(AssetError, match="colour"):
        load_record(p)


def test_record_file_constructs_no_objects(tmp_path):
    """A record is untrusted: a Python object tag is a YAML error, not a call (the C loader is safe too)."""
    p = tmp_path / "sku.yaml"
    marker = tmp_path / "ran"
    p.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(AssetError, match="not valid YAML") as e:
        load_record(p)
    assert "\n" not in str(e.value) and not marker.exists()


def test_slugify_and_unique_id(tmp_path):
    assert slugify("Cracker Box (YCB)") == "cracker-box-ycb"
    cat = Catalog(tmp_path)
    cat.add(_record(id="cracker-box"), _write_mesh)
    assert cat.unique_id("Cracker box") == "cracker-box-2"
