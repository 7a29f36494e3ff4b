"""The docstring examples of mlcl.losses and mlcl.models.moco run."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch
from torch import nn

MODULES = [
    "mlcl.losses.cgmvae",
    "mlcl.losses.supcon",
    "mlcl.losses.mulsupcon",
    "mlcl.losses.mulcon",
    "mlcl.losses.jaccard",
    "mlcl.losses.msc",
    "mlcl.losses.bce",
    "mlcl.models.moco",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    globs = dict(vars(mod), torch=torch, nn=nn)
    result = doctest.testmod(mod, extraglobs=globs, verbose=False)
    assert result.attempted > 0 and result.failed == 0
