"""Shared fixtures. Small variants and low resolutions keep the default run fast."""

from __future__ import annotations

import os

import pytest
import torch

# Tests never read or fill the user's export cache (~/.cache/mobexport/artifacts): a test that
# wants the cache passes its own directory (benchmarks/sweep/export_cache.py).
os.environ["MOBEXPORT_CACHE_DIR"] = "off"


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _no_inherited_terminal_width(monkeypatch):
    """pytest-xdist workers inherit COLUMNS=80; mobexport's piped output is wide unless a test sets COLUMNS."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture
def out_dir(tmp_path):
    return tmp_path / "out"
