"""The short examples in mlcl.data's docstrings run (those needing files outside are +SKIP)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["__init__", "base", "registry", "store", "torch_utils", "arff", "yeast", "digits", "mulan", "reuters",
           "formats", "textcsv", "images", "download"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, data_root, monkeypatch):
    monkeypatch.setenv("MLCL_DATA", str(data_root))
    mod = importlib.import_module("mlcl.data" if name == "__init__" else f"mlcl.data.{name}")
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0
