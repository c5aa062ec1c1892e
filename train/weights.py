"""Where a detector's initial weights come from, the torchvision way.

``model.weights`` (``simreal train --weights``) is one of

* ``auto`` (default): torchvision's COCO detector file, else its ImageNet backbone file, from the torch hub
  cache (``torch.hub.get_dir()/checkpoints``); else the COCO file is downloaded when the network allows;
  else random init, with a warning;
* ``DEFAULT`` / ``COCO``: the architecture's COCO detector weights (``get_model_weights(builder).DEFAULT``);
* ``IMAGENET``: the ImageNet weights of its backbone (the builder's ``weights_backbone``);
* a torchvision enum name such as ``ResNet50_Weights.IMAGENET1K_V1`` (``torchvision.models.get_weight``);
* ``none``: random init;
* a local file: a detector or backbone state dict, or a ``simreal train`` checkpoint.

A named file comes from the hub cache first, then from the network (as torchvision's builders do with
``weights=``); offline with nothing cached it is one clear error. Every file is read with
``torch.load(weights_only=True)``. What was used is returned as a sentence without machine paths (logs and
reports print it verbatim); the full path goes to the log.
"""

from __future__ import annotations

import logging
import os
import socket
import typing
from dataclasses import dataclass
from inspect import signature
from pathlib import Path
from urllib.parse import urlparse

import torch

from synth.errors import ConfigError

log = logging.getLogger(__name__)

# The torchvision builder whose weights fit each architecture. torchvision has no Mask R-CNN on
# MobileNetV3: its Faster R-CNN MobileNetV3-Large FPN shares the backbone, FPN, RPN and box head.
TORCHVISION_BUILDERS = {
    "maskrcnn_resnet50_fpn_v2": "maskrcnn_resnet50_fpn_v2",
    "maskrcnn_mobilenet_v3_large_fpn": "fasterrcnn_mobilenet_v3_large_fpn",
    "ssd300_vgg16": "ssd300_vgg16",
    "ssdlite320_mobilenet_v3_large": "ssdlite320_mobilenet_v3_large",
}
CHOICES = ("auto", "DEFAULT", "COCO", "IMAGENET", "none")
OFFLINE_ENV = "SIMREAL_OFFLINE"  # "1": never try to download (a test, an air-gapped machine)


@dataclass
class InitialWeights:
    kind: str  # "detector", "backbone" or "random"
    state: dict[str, torch.Tensor] | None
    source: str  # what the logs and reports say, without machine paths
    norm: str | None = None  # the normalisation a checkpoint was trained with, when it says


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """(state dict, norm it was trained with if known) from a weights file or a `simreal train` checkpoint.

    Read with weights_only=True: tensors and plain containers only, no code.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, f"weights file not found (or use one of {', '.join(CHOICES)})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise ConfigError(
            path, f"not a loadable weights file ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
        ) from None
    norm = None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        norm = obj.get("norm") if isinstance(obj.get("norm"), str) else None
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(path, "does not hold a state dict of tensors")
    return obj, norm


def is_detector_state(sd: dict) -> bool:
    return any(k.startswith(("backbone.", "rpn.", "roi_heads.", "head.")) for k in sd)


# ---- torchvision's enums ---------------------------------------------------------------------------
def detector_weights(arch: str):
    """The COCO weights enum value torchvision's builder for ``arch`` uses as ``weights="DEFAULT"``."""
    from torchvision.models import get_model_weights

    return get_model_weights(TORCHVISION_BUILDERS[arch]).DEFAULT


def backbone_weights(arch: str):
    """The ImageNet weights of ``arch``'s backbone: the builder's ``weights_backbone`` default, or (where
    that is None, as for Mask R-CNN v2) the default of the enum its annotation names."""
    from torchvision.models import get_model_builder

    param = signature(get_model_builder(TORCHVISION_BUILDERS[arch])).parameters["weights_backbone"]
    if param.default is not None:
        return param.default
    enum = next(a for a in typing.get_args(param.annotation) if a is not type(None))
    return enum.DEFAULT


def named_weights(arch: str, choice: str):
    """A torchvision enum value for DEFAULT / COCO / IMAGENET or a full name like ``ResNet50_Weights.X``."""
    if choice in ("DEFAULT", "COCO"):
        return detector_weights(arch)
    if choice == "IMAGENET":
        return backbone_weights(arch)
    from torchvision.models import get_weight

    try:
        return get_weight(choice)
    except (ValueError, KeyError):
        raise ConfigError(
            "model.weights",
            f"'{choice}' is neither a file nor one of {', '.join(CHOICES)} nor a torchvision weights name",
        ) from None


def _describe(weights, kind: str, how: str) -> str:
    what = "COCO detector" if kind == "detector" else "ImageNet backbone"
    return f"torchvision {weights!r} ({what}, {how})"


# ---- cache and network -----------------------------------------------------------------------------
def cached_file(weights) -> Path:
    """Where torchvision keeps (or would keep) this enum's file: the hub cache, by the URL's file name."""
    return hub_checkpoint_dir() / Path(urlparse(weights.url).path).name


def download_blocked(url: str, timeout: float = 5.0) -> str | None:
    """Why downloading ``url`` cannot work now (None when its host answers): offline switch or no network.
    Probed with a short timeout, because torch.hub's download has none and would hang on a silent network."""
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        return f"downloads switched off (${OFFLINE_ENV})"
    host = urlparse(url).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as e:
        return f"{host} unreachable ({type(e).__name__})"
    return None


def obtain(weights) -> tuple[dict[str, torch.Tensor] | None, str]:
    """(state dict, "torch hub cache" | "downloaded"), or (None, why not): the hub cache first, then a
    download into it (hash checked) when the network allows."""
    path = cached_file(weights)
    if path.is_file():
        log.info("weights: %r from %s", weights, path)
        return read_weights(path)[0], "torch hub cache"
    why = download_blocked(weights.url)
    if why is not None:
        return None, why
    log.info("weights: downloading %r from %s", weights, weights.url)
    try:
        torch.hub.load_state_dict_from_url(
            weights.url, map_location="cpu", progress=False, check_hash=True, weights_only=True
        )
    except Exception as e:  # noqa: BLE001 - network, disk or hash failures all mean "could not download"
        return None, f"download failed ({type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''})"
    return read_weights(path)[0], "downloaded"


def fetch(weights) -> tuple[dict[str, torch.Tensor], str]:
    """``obtain``, with a one-line error that says what to do when neither the cache nor the network has it."""
    state, how = obtain(weights)
    if state is None:
        raise ConfigError(
            "model.weights",
            f"{weights!r} is not in the torch hub cache ({cached_file(weights).name} in "
            f"$TORCH_HOME/hub/checkpoints) and {how}; copy the file there, pass --weights FILE, "
            "or use --weights auto / none",
        )
    return state, how


# ---- choosing -----------------------------------------------------------------------------------------
def _from_file(path: str) -> InitialWeights:
    sd, norm = read_weights(path)
    kind = "detector" if is_detector_state(sd) else "backbone"
    if norm is None and kind == "detector" and not any(k.endswith("running_mean") for k in sd):
        norm = "group"  # normalisation layers without running statistics: a GroupNorm model
    shown = path if not Path(path).is_absolute() else Path(path).name
    log.info("weights: file %s", Path(path).resolve())
    return InitialWeights(kind, sd, f"file {shown}", norm)


def _auto(arch: str, use_cache: bool) -> InitialWeights:
    """Cached COCO, cached ImageNet, downloaded COCO, or random init with a warning."""
    if not use_cache:
        return InitialWeights("random", None, "random init (weights auto, torch hub cache switched off)")
    candidates = (detector_weights(arch), backbone_weights(arch))
    for w in candidates:
        if cached_file(w).is_file():
            return _named(w)
    state, how = obtain(candidates[0])
    if state is not None:
        return InitialWeights("detector", state, _describe(candidates[0], "detector", how))
    files = " or ".join(cached_file(w).name for w in candidates)
    log.warning(
        "weights: none of %s in %s and no download (%s): training starts from random init",
        files,
        hub_checkpoint_dir(),
        how,
    )
    return InitialWeights("random", None, f"random init (weights auto: {files} not cached, {how})")


def _named(weights) -> InitialWeights:
    state, how = fetch(weights)
    kind = "detector" if is_detector_state(state) else "backbone"
    return InitialWeights(kind, state, _describe(weights, kind, how))


def choose_initial_weights(arch: str, weights: str, use_hub_cache: bool = True) -> InitialWeights:
    """Resolve ``model.weights`` for architecture ``arch`` (see the module docstring)."""
    if weights == "none":
        return InitialWeights("random", None, "random init (weights none)")
    if weights == "auto":
        return _auto(arch, use_hub_cache)
    if weights in CHOICES or ("_Weights." in weights and not Path(weights).exists()):
        return _named(named_weights(arch, weights))
    return _from_file(weights)
