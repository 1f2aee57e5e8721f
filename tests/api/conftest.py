"""The four user models of ``tests/user_models/`` (written as users write them), found by path."""

from __future__ import annotations

from pathlib import Path

import pytest

USER_MODELS = Path(__file__).resolve().parents[1] / "user_models"

# name -> (file, export size): small sizes keep the default run short.
MODELS = {
    "plain_cnn": "32x48",
    "hybrid": "32x48",
    "vit_sdpa": "32x48",
    "two_heads": "32x48",
}


def reference(name: str) -> str:
    """``path/to/file.py:build``, the CLI's file-factory reference of a user model."""
    return f"{USER_MODELS / f'{name}.py'}:build"


def load_factory(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"user_model_{name}", USER_MODELS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("api")
