"""simreal.synth: asset catalog, scene description, randomizers, renderers and the COCO writer."""

__version__ = "0.1.0"
