"""Printed packaging artwork: brand names, colour schemes, logos, EAN-13 barcodes, nutrition panels.

Why it looks like this: detectors trained on synthetic shelves learn from text-like strokes, logos,
barcodes and dense small print; flat-coloured boxes teach them nothing about real labels. Everything
here is drawn with Pillow at a known texel density (pixels per metre of the printed surface), so the
packaging generator can map each panel onto its face without stretching (``synth.procedural.atlas``).

Modules: ``design`` (everything random about one product, decided once from the seed), ``products``
(names and nutrition per category), ``palette`` (colour schemes), ``fonts``, ``ean13`` (barcodes),
``artwork`` (logos, motifs, illustrations, small print) and ``panels`` (the faces of a pack).
"""
