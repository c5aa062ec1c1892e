"""Label modes: every variant is trained class-agnostically, and per class too when the catalog's category
names match the real set's (compared loosely), through one category map per side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synth.fsutil import atomic_write_text


@dataclass(frozen=True)
class LabelMode:
    labels: str  # "agnostic" | "per-class"
    class_name: str | None  # the one class of the agnostic mode
    synthetic_map: str | None = None  # category map files of the per-class mode
    real_map: str | None = None

    @property
    def agnostic(self) -> bool:
        return self.labels == "agnostic"

    @property
    def suffix(self) -> str:
        return "" if self.agnostic else "-per-class"

    def category_map(self, data: str) -> str | None:
        """The map for a variant trained on ``data`` ("real_train" or a synthetic set)."""
        if self.agnostic:
            return None
        return self.real_map if data == "real_train" else self.synthetic_map


def shared_classes(synthetic_categories: list[str], real_categories: list[str]) -> list[str]:
    """Real category names that some synthetic category also has (compared loosely, see normalize_name)."""
    from train.data import normalize_name

    syn = {normalize_name(c) for c in synthetic_categories}
    return sorted({c for c in real_categories if normalize_name(c) in syn})


def write_category_map(categories: list[str], classes: list[str], path: Path) -> str:
    """{category: its class, or null}: categories outside ``classes`` are dropped from training/evaluation."""
    import yaml

    from train.data import normalize_name

    by_norm = {normalize_name(c): c for c in classes}
    mapping = {c: by_norm.get(normalize_name(c)) for c in categories}
    atomic_write_text(path, yaml.safe_dump(mapping, sort_keys=True))
    return str(path)


def plan_label_modes(
    datasets: dict[str, dict], synthetic_sets: list[str], class_name: str, per_class: bool, maps_dir: Path
) -> tuple[list[LabelMode], dict]:
    """The label modes to train, and the summary's ``per_class`` record (classes, maps, or why skipped)."""
    modes = [LabelMode("agnostic", class_name)]
    record: dict = {"enabled": per_class, "classes": []}
    if not per_class:
        return modes, record
    real_train, real_test = datasets["real_train"], datasets["real_test"]
    syn_cats = sorted({c for k in synthetic_sets for c in datasets[k]["categories"]})
    classes = shared_classes(syn_cats, real_train["categories"]) if syn_cats else []
    record["classes"] = classes
    tested = [c for c in classes if real_test["objects_per_category"].get(c)]
    if len(classes) >= 2 and tested:
        syn_map = write_category_map(syn_cats, classes, maps_dir / "synthetic.yaml")
        real_map = write_category_map(
            real_train["categories"] + real_test["categories"], classes, maps_dir / "real.yaml"
        )
        modes.append(LabelMode("per-class", None, syn_map, real_map))
        record["maps"] = {"synthetic": syn_map, "real": real_map}
    elif len(classes) < 2:
        record["skipped"] = (
            f"only {len(classes)} category name(s) shared by the catalog and the real set "
            f"({', '.join(classes) or 'none'}): per-class scores need at least 2"
        )
    else:
        record["skipped"] = f"the real test split has no object of the shared classes ({', '.join(classes)})"
    return modes, record
