"""The training-curve PNG of fixtures."""

from __future__ import annotations

import pytest

from mobexport.benchmarks.fixture_plot import plot_training
from mobexport.errors import OutputDirError


def _meta(model: str, top1: list[float]) -> dict:
    history = [{"epoch": e, "train_loss": None if e == 0 else 2.0 / e, "heldout_top1": a, "heldout_loss": 2.3 - a}
               for e, a in enumerate(top1)]
    return {"model": model, "resolution": 96, "history": history}


def test_plot_writes_a_png(tmp_path):
    path = plot_training([_meta("a", [0.1, 0.5, 0.92]), _meta("b", [0.1, 0.4, 0.8, 0.95])], tmp_path / "p" / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert [p.name for p in path.parent.iterdir()] == ["c.png"]  # no temporary file left


def test_plot_into_an_unwritable_place_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputDirError):
        plot_training([_meta("a", [0.1, 0.9])], blocker / "c.png")
