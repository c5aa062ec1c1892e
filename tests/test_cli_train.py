"""simreal train | evaluate | report | bench train: help, flag -> config mapping, one-line errors."""

from __future__ import annotations

import re

import pytest

from flows import cli
from flows.cli.training import train_config_from_args


@pytest.mark.parametrize("argv", [["train"], ["evaluate"], ["report"], ["bench", "train"]])
def test_every_subcommand_help_shows_an_example(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args([*argv, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and "simreal " + " ".join(argv) in out


def test_train_flags_override_config_file(tmp_path):
    cfg_file = tmp_path / "t.yaml"
    cfg_file.write_text("data: synthetic/\nout: runs/a\nsteps: 50\nmodel:\n  image_size: 320\n")
    args = cli.build_parser().parse_args(
        [
            "train",
            "--config",
            str(cfg_file),
            "--model",
            "ssdlite",
            "--steps",
            "7",
            "--target-images",
            "photos/",
            "--dann",
            "--self-train",
            "--fda",
            "--self-train-threshold",
            "0.6",
            "--class-agnostic",
            "screw",
            "--eval",
            "real/a",
            "--eval",
            "real/b",
            "--no-augment",
        ]
    )
    cfg = train_config_from_args(args)
    assert cfg.model.name == "ssdlite320_mobilenet_v3_large" and cfg.model.image_size == 320
    assert cfg.steps == 7 and cfg.dann.enabled and cfg.target_images == "photos/"
    assert cfg.self_training.enabled and cfg.self_training.threshold == 0.6 and cfg.fda.enabled
    assert cfg.class_agnostic == "screw" and [e.data for e in cfg.eval] == ["real/a", "real/b"]
    assert not cfg.augment.enabled and cfg.data == "synthetic/"


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert cli.main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simreal: error:") and "nope" in err and "\n" not in err
    assert not (tmp_path / "run").exists()  # nothing created for a bad input
    assert cli.main(["train", "--data", "x", "--out", "y", "--model", "yolo"]) == 2
    assert "unknown model 'yolo'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: d\nout: o\nsteps: -3\n")
    assert cli.main(["train", "--config", str(bad)]) == 2
    assert "key 'steps'" in capsys.readouterr().err
    assert cli.main(["train", "--data", "d", "--out", "o", "--dann"]) == 2
    assert "target_images" in capsys.readouterr().err
    assert cli.main(["train", "--data", "d", "--out", "o", "--self-train"]) == 2
    assert "self_training.enabled needs target_images" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(
            ["evaluate", "--model", "c.pt", "--data", "d", "--class-agnostic", "--category-map", "m"]
        )


def _dotted(data: dict, key: str):
    for part in key.split("."):
        data = data[part]
    return data


def test_cpu_training_takes_the_default_runs_recipe_where_nothing_else_is_given(caplog):
    from flows.params import CPU_RECIPE

    def parse(*flags):
        return train_config_from_args(
            cli.build_parser().parse_args(["train", "--data", "d", "--out", "o", *flags])
        )

    with caplog.at_level("INFO", logger="train"):
        cpu = parse("--device", "cpu", "--steps", "7").model_dump()
    assert cpu["steps"] == 7  # a flag wins
    for key, value in CPU_RECIPE.items():
        if key != "steps":
            assert _dotted(cpu, key) == value, key
    assert "CPU recipe" in caplog.text and not re.search(r"\bsteps=", caplog.text)  # says what it filled in
    # a group the user started on is left whole: an lr chosen for SGD never meets the recipe's AdamW
    own = parse("--device", "cpu", "--lr", "0.02", "--model", "maskrcnn_mobilenet").model_dump()
    assert (own["optimizer"], own["lr"], own["model"]["trainable_backbone_layers"]) == ("sgd", 0.02, None)
    assert own["batch_size"] == CPU_RECIPE["batch_size"]  # the rest of the recipe still applies
    gpu = parse("--device", "cuda")
    assert (gpu.steps, gpu.batch_size, gpu.model.image_size, gpu.model.fpn_channels) == (2000, 4, 512, 256)


def test_example_cpu_config_loads_from_any_folder_and_is_the_recipe(tmp_path, monkeypatch):
    from flows.params import CPU_RECIPE

    monkeypatch.chdir(tmp_path)  # a user running from elsewhere: configs/ resolves from the repository
    cfg = train_config_from_args(
        cli.build_parser().parse_args(["train", "--config", "configs/train_cpu.yaml"])
    )
    dump = cfg.model_dump()
    assert {k: _dotted(dump, k) for k in CPU_RECIPE} == CPU_RECIPE
    assert cfg.device == "cpu" and cfg.model.weights == "auto" and cfg.class_agnostic == "product"


def test_weights_default_offline_without_cache_is_one_line(tmp_path, monkeypatch, capsys):
    from train_fixtures import make_shapes_coco

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    monkeypatch.setenv("SIMREAL_OFFLINE", "1")
    data = make_shapes_coco(tmp_path / "shapes", n_images=4)
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--weights", "DEFAULT"]
    argv += ["--model", "maskrcnn_mobilenet"]
    assert cli.main([*argv, "--steps", "1", "--image-size", "64", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simreal: error: model.weights:") and "\n" not in err
    assert "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1 is not in the torch hub cache" in err
