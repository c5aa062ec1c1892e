"""simreal train | evaluate | report | bench train: help, flag -> config mapping, one-line errors."""

from __future__ import annotations

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
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(
            ["evaluate", "--model", "c.pt", "--data", "d", "--class-agnostic", "--category-map", "m"]
        )
