"""Models of the four papers. Submodules are imported lazily (``mlcl.models.CGMVAE`` loads only
``mlcl.models.cgmvae``), so importing ``mlcl.models`` never pulls torchvision or transformers."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CGMVAE": "cgmvae",
    "MomentumEncoder": "moco",
    "LabelledQueue": "moco",
    "MLP": "backbones",
    "MulSupConModel": "mulsupcon",
    "LabelLevelNet": "mulcon",
    "TextEncoder": "text",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))
