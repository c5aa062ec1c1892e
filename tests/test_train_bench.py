"""train.bench: the training benchmark measures every field it reports (tiny sizes here)."""

from __future__ import annotations

import json

import pytest

from train.bench import bench_train


@pytest.mark.slow
def test_bench_train_writes_json_with_throughput_and_memory(tmp_path):
    res = bench_train(
        ["ssdlite", "maskrcnn_mobilenet"],
        image_size=96,
        batch_size=2,
        warmup=0,
        iterations=1,
        device="cpu",
        workers=0,
        threads=1,
        out=tmp_path,
    )
    written = json.loads((tmp_path / "bench_train.json").read_text())
    assert written["image_size"] == 96 and written["device"]["device"] == "cpu"
    for name in ("ssdlite320_mobilenet_v3_large", "maskrcnn_mobilenet_v3_large_fpn"):
        r = written["models"][name]
        assert "error" not in r, r
        assert r["images_per_s"] > 0 and r["peak_memory_mib"] > 50 and r["memory_kind"] == "process peak RSS"
        assert r["weights_source"]
    assert written["data_loading"]["images_per_s"] > 0 and written["data_loading"]["masks"]
    assert isinstance(written["loading_keeps_up"], bool)
    assert res["models"].keys() == written["models"].keys()
