"""The op-profile and int8 study charts say what they show, drawn from hand-written rows."""

from __future__ import annotations

from types import SimpleNamespace

from mobexport.benchmarks.profile import ops as op_profile
from mobexport.benchmarks.studies import quant_latency

DEVICE = {"name": "local", "cpu": "AMD EPYC", "cores": 2}
ROWS = [dict(model="mobile_former_294m", target="onnx", fp32_ms=20.36, int8_ms=41.96),
        dict(model="mobilenet_v3_large_100", target="executorch", fp32_ms=8.08, int8_ms=9.55)]


def captured(monkeypatch, module):
    figures = []
    monkeypatch.setattr(module, "save_png", lambda fig, path, **kw: figures.append(fig) or path)
    return figures


def all_text(fig) -> str:
    texts = [t.get_text() for t in fig.texts] + [ax.get_title() for ax in fig.axes]
    texts += [t.get_text() for ax in fig.axes for t in ax.texts] + [ax.get_ylabel() for ax in fig.axes]
    return "\n".join(texts)


def test_op_profile_chart_says_it_includes_the_profilers_overhead(monkeypatch, tmp_path):
    figures = captured(monkeypatch, op_profile)
    profiles = [{"model": m, "resolution": 224, "threads": 1, "target": "onnx", "total_ms": t, "device": DEVICE,
                 "ops": {"Conv": {"ms": t / 2}, "Reshape": {"ms": t / 4}}} for m, t in (("a", 37.8), ("b", 11.3))]
    op_profile.plot(profiles, tmp_path / "op_time.png")
    text = all_text(figures[0])
    assert "per-node overhead" in text and "profiled" in text
    assert "AMD EPYC" in text and "1 thread" in text and "fp32" in text


def test_int8_chart_labels_the_latency_ratio_not_a_speed_up(monkeypatch, tmp_path):
    figures = captured(monkeypatch, quant_latency)
    quant_latency.plot(ROWS, tmp_path / "latency.png", 224, 0, DEVICE)
    text = all_text(figures[0])
    assert "int8/fp32\nlatency 2.06" in text and "0.49x" not in text
    assert "AMD EPYC" in text and "runtime-default threads" in text


def test_accuracy_vs_latency_uses_top1_when_labelled_else_agreement(monkeypatch, tmp_path):
    figures = captured(monkeypatch, quant_latency)
    assert quant_latency.plot_accuracy(ROWS, tmp_path / "a.png", 224) is None     # accuracy unknown: no plot
    agreement = [dict(r, int8_top1_agreement=0.97, accuracy_evaluated_on="images held back") for r in ROWS]
    quant_latency.plot_accuracy(agreement, tmp_path / "a.png", 224, 1, DEVICE)
    ax = figures[-1].axes[0]
    assert ax.get_ylabel() == "top-1 agreement with the fp32 model (%)"
    points = sorted(tuple(c.get_offsets()[0]) for c in ax.collections)
    assert points == sorted([(20.36, 100.0), (41.96, 97.0), (8.08, 100.0), (9.55, 97.0)])
    labelled = [dict(r, fp32_top1=0.987, int8_top1=0.98) for r in agreement]
    quant_latency.plot_accuracy(labelled, tmp_path / "a.png", 224, 1, DEVICE)
    assert figures[-1].axes[0].get_ylabel() == "top-1 (%)"


def test_accuracy_of_reads_the_int8_manifest():
    artifact = SimpleNamespace(manifest=SimpleNamespace(quantization={"mode": "int8", "accuracy": {
        "top1_agreement": 0.99, "evaluated_on": "fixture held-out split", "float_top1": 0.987,
        "quantized_top1": 0.986}}))
    assert quant_latency.accuracy_of(artifact) == {
        "fp32_top1": 0.987, "int8_top1": 0.986, "int8_top1_agreement": 0.99,
        "accuracy_evaluated_on": "fixture held-out split"}
    none = SimpleNamespace(manifest=SimpleNamespace(quantization={"mode": "int8"}))
    assert quant_latency.accuracy_of(none) == {}
