"""Colour of a blackbody radiator at a given temperature, as a linear-sRGB light colour.

Lamps are described by their correlated colour temperature (2700 K warm white ... 6500 K daylight). The
colour is computed from first principles rather than a curve fit in RGB: Planck's law gives the spectrum,
the CIE 1931 2-degree colour-matching functions (in the analytic multi-lobe form of Wyman, Sloan & Shirley,
JCGT 2013) turn it into XYZ, and the standard matrix maps XYZ to linear sRGB (D65 white). The result is
scaled so its largest channel is 1: intensity is a separate light parameter.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_H = 6.62607015e-34  # Planck constant, J s
_C = 2.99792458e8  # speed of light, m/s
_K = 1.380649e-23  # Boltzmann constant, J/K

_WAVELENGTHS_NM = np.arange(360.0, 831.0, 1.0)

_XYZ_TO_LINEAR_SRGB = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)


def _lobe(wl: np.ndarray, mu: float, sigma_below: float, sigma_above: float) -> np.ndarray:
    sigma = np.where(wl < mu, sigma_below, sigma_above)
    return np.exp(-0.5 * ((wl - mu) / sigma) ** 2)


def _cie_1931_cmf(wl: np.ndarray) -> np.ndarray:
    """(N, 3) x-bar, y-bar, z-bar: Wyman et al. 2013 multi-lobe fit of the CIE 1931 2-degree observer."""
    x = (
        1.056 * _lobe(wl, 599.8, 37.9, 31.0)
        + 0.362 * _lobe(wl, 442.0, 16.0, 26.7)
        - 0.065 * _lobe(wl, 501.1, 20.4, 26.2)
    )
    y = 0.821 * _lobe(wl, 568.8, 46.9, 40.5) + 0.286 * _lobe(wl, 530.9, 16.3, 31.1)
    z = 1.217 * _lobe(wl, 437.0, 11.8, 36.0) + 0.681 * _lobe(wl, 459.0, 26.0, 13.8)
    return np.stack([x, y, z], axis=1)


_CMF = _cie_1931_cmf(_WAVELENGTHS_NM)


def planck_radiance(wavelength_nm: np.ndarray, kelvin: float) -> np.ndarray:
    """Spectral radiance B(lambda, T) in W sr^-1 m^-3."""
    wl = np.asarray(wavelength_nm, dtype=np.float64) * 1e-9
    return (2.0 * _H * _C**2) / (wl**5 * np.expm1(_H * _C / (wl * _K * kelvin)))


def blackbody_xyz(kelvin: float) -> np.ndarray:
    """CIE XYZ of a blackbody, normalised to Y = 1."""
    if not (500.0 <= kelvin <= 100000.0):
        raise ValueError(f"colour temperature {kelvin} K is outside 500..100000 K")
    xyz = planck_radiance(_WAVELENGTHS_NM, kelvin) @ _CMF
    return xyz / xyz[1]


def blackbody_chromaticity(kelvin: float) -> tuple[float, float]:
    """CIE 1931 (x, y) chromaticity, e.g. about (0.4476, 0.4074) at 2856 K (illuminant A)."""
    X, Y, Z = blackbody_xyz(kelvin)
    s = X + Y + Z
    return float(X / s), float(Y / s)


@lru_cache(maxsize=4096)
def _kelvin_to_rgb_cached(kelvin: float) -> tuple[float, float, float]:
    rgb = np.clip(_XYZ_TO_LINEAR_SRGB @ blackbody_xyz(kelvin), 0.0, None)
    rgb = rgb / rgb.max()
    return tuple(round(float(c), 6) for c in rgb)


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """Linear-sRGB colour of a blackbody at ``kelvin`` with its largest channel equal to 1.

    Out-of-gamut components (deep red or blue temperatures) are clipped at 0. Rounded to 6 decimals so
    scenes serialise to short, stable JSON.
    """
    return _kelvin_to_rgb_cached(round(float(kelvin), 3))
