"""Issue 24 item 20 and issue 23 item 16 (bench side): a bench run in an --out that already has an earlier
run's summary, table and plots says which ones it replaced (every measurement stays in results.jsonl), and a
summary whose "× baseline" column is empty says why and how to fill it.

The sweep itself is replaced by one that appends hand-written records: what is tested is what bench writes.
"""

from __future__ import annotations

from mobexport.benchmarks.sweep import cli as bench_cli
from mobexport.benchmarks.results.records import append_record
from mobexport.benchmarks.sweep.run import SweepOutcome

from .sweep_helpers import record, run_cli

MODEL = "mobilenet_v3_small_075"


def fake_sweep(resolution: int, model: str = MODEL):
    def sweep(plan, device, out_dir, policy, console=None, **kwargs):
        results = out_dir / "results.jsonl"
        append_record(results, record(model, resolution, target="pytorch"))
        return SweepOutcome(results)

    return sweep


def bench(capsys, out, *extra):
    return run_cli(capsys, "bench", "--models", MODEL, "--targets", "pytorch", "--resolutions", "96", "--out", out,
                   *extra)


def test_a_second_run_says_which_outputs_it_replaced(tmp_path, capsys, monkeypatch):
    out = tmp_path / "bench"
    monkeypatch.setattr(bench_cli, "run_sweep", fake_sweep(96))
    status, _, err = bench(capsys, out)
    assert status == 0, err
    assert "replaced" not in err
    first_summary = (out / "summary.md").read_text()

    monkeypatch.setattr(bench_cli, "run_sweep", fake_sweep(128))
    status, _, err = bench(capsys, out)
    assert status == 0, err
    text = " ".join(err.split())
    assert "replaced the earlier run's curves.csv" in text and "summary.md" in text and ".png" in text
    assert "cover all 2 record(s) of results.jsonl, which keeps every earlier measurement" in text
    assert (out / "summary.md").read_text() != first_summary
    assert len((out / "results.jsonl").read_text().splitlines()) == 2


def test_an_empty_baseline_column_is_explained(tmp_path, capsys, monkeypatch):
    out = tmp_path / "bench"
    monkeypatch.setattr(bench_cli, "run_sweep", fake_sweep(96))
    status, stdout, err = bench(capsys, out)
    assert status == 0, err
    said = " ".join(stdout.split())
    assert "no baseline model, so the × baseline column is empty: add mobilenet_v3_large_100 to --models" in said
    assert "no baseline model, so the × baseline column is empty" in (out / "summary.md").read_text()


def test_a_baseline_missing_at_some_resolutions_is_named(tmp_path, capsys, monkeypatch):
    out = tmp_path / "bench"
    monkeypatch.setattr(bench_cli, "run_sweep", fake_sweep(96))
    status, stdout, err = run_cli(capsys, "bench", "--models", f"{MODEL},mobilenet_v3_small_100", "--targets",
                                  "pytorch", "--resolutions", "96", "--baseline", "mobilenet_v3_small_100",
                                  "--out", out)
    assert status == 0, err
    assert "the baseline mobilenet_v3_small_100 has no successful measurement at pytorch@96" in " ".join(stdout.split())
