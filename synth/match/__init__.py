"""Fit a render config's scene statistics to a few real photos: ``stats`` (what is compared),
``adjust`` (one fitting step), ``fit`` (probe, compare, adjust, keep the best), ``plot`` (before/after)."""

from synth.match.fit import FitResult, fit_config, write_fit

__all__ = ["FitResult", "fit_config", "write_fit"]
