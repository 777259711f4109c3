"""The examples in the public docstrings run and print what they show."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["fastconv._api", "fastconv.signal", "fastconv._threads", "fastconv._info",
           "fastconv._plan", "fastconv._tuning", "fastconv._operator",
           "fastconv._transpose", "fastconv.grad"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
