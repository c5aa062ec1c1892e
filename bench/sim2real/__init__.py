"""The sim-to-real benchmark: does a detector trained on rendered images find the objects in real photos?

Per task (retail: packaged products on store shelves; industrial: screws and bolts on a table), it

1. builds the benchmark's own catalog (procedural packages, or procedural fasteners plus the meshes in
   ``../shared/meshes/fasteners``) and renders two synthetic sets from ``configs/sim2real_<task>.yaml``
   with one seed, so both show the same scenes: *plain* (realistic materials, fixed lighting) and *dr*
   (the file's domain-randomized looks and lighting);
2. splits the real set deterministically by photo (``train.splits``) unless a separate test set is given,
   and refuses to go on if any test picture (or a copy of one) is also in training; ``test_fold`` k tests
   on the k-th disjoint block of the same draw instead of the first;
3. trains the variants with one budget (model, input size, steps, batch, optimizer, seed):
   (a) synthetic plain, no train-time augmentation; (b) synthetic DR + kornia augmentation; (c) (b) + DANN
   and mean-teacher self-training with the real *train* photos as unlabelled target; (d) real train split
   only (the reference); (e) (b)'s checkpoint fine-tuned on the real train split -- class-agnostic
   ("product" / "screw"), and per class too where the catalog's category names match the real set's;
4. evaluates every model on the same real test split (pycocotools), writes ``sim2real.json`` (every number,
   the protocol, provenance) and the comparison report (``train.compare``).

Nothing is tuned on the test split: all settings are fixed before a run, and the last checkpoint of every
variant is evaluated once. Every step reuses finished work (catalog entries, render shards, trained runs
whose configuration matches), so an interrupted benchmark continues where it stopped.

Modules, one concern each: ``variants`` (what is compared), ``scales`` (tasks, budgets, parameters),
``catalogs``, ``real_sets`` (splits and their leak check), ``synthetic`` (render jobs), ``labels``
(per-class maps), ``training`` (train configs, the train-or-reuse cache, evaluation records), ``summary``
(ratios, gains, notes) and ``protocol`` (the ordered steps; ``flows/sim2real.py`` runs them under Prefect);
``pool`` and ``pool_report`` score finished runs together (test folds, further seeds, recipe A/Bs).

Output directory (default ``runs/sim2real/<task>-<scale>``)::

    catalog/                    the benchmark's catalog (generated, not committed)
    real/train.json, test.json  the real split as COCO files pointing at the original photos
    real/split.json             split ids, photo groups and the leak check
    real/category_maps/         per-class label maps (when classes match)
    synthetic/plain/, dr/       rendered COCO sets (synth.dataset layout)
    variants/<key>-<name>/      one training run each (train.engine layout), eval/real_test/ inside
    sim2real.json               all numbers
    report.html, report.md, report_files/
"""
