"""simreal.train: detectors trained and evaluated on COCO datasets, synthetic or real.

Knows COCO only (never the renderers), so it works the same on a customer's labelled photos.
Entry points: ``train.engine.train(TrainConfig) -> run dir`` (the run directory layout is documented
in train/engine.py), ``train.evaluate.evaluate(ckpt, data, ...) -> metrics``,
``train.report.write_report(run_dir) -> report.html``, ``train.bench.bench_train(...)``; the
``simreal train | evaluate | report | bench train`` subcommands are built in flows/cli/.
"""
