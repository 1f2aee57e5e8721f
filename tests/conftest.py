"""Shared fixtures. Small variants and low resolutions keep the default run fast."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture
def out_dir(tmp_path):
    return tmp_path / "out"
