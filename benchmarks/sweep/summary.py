"""``summary.md`` of a sweep, and the same table for the terminal (rich)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from mobexport.manifest import write_text_atomic

from mobexport.benchmarks.results.curves import METRICS, crossovers, setting_key, setting_label

TABLE_COLUMNS = (
    ("model", "model"), ("res", "resolution"), ("median ms", "latency_median_ms"), ("95% CI ms", None),
    ("p90 ms", "latency_p90_ms"), ("p95 ms", "latency_p95_ms"), ("p99 ms", "latency_p99_ms"), ("img/s", "throughput_ips"), ("init ms", "init_ms"),
    ("peak MiB", "peak_memory_mib"), ("GMACs", "gmacs"), ("ms/GMAC", "ms_per_gmac"), ("× baseline", "vs_baseline"),
)

DIGITS = {"gmacs": 3, "ms_per_gmac": 2, "vs_baseline": 3, "latency_median_ms": 2, "latency_p90_ms": 2, "latency_p95_ms": 2,
          "latency_p99_ms": 2}


def _cell(row: dict, key: str | None) -> str:
    if key is None:
        if row.get("ci95_low_ms") is None:
            return ""
        return f"{row['ci95_low_ms']:.2f}–{row['ci95_high_ms']:.2f}"
    value = row.get(key)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{DIGITS.get(key, 1)}f}"
    return str(value)


def _settings(rows: list[dict]) -> list[tuple]:
    return sorted({setting_key(r) for r in rows})


def markdown(rows: list[dict], baseline: str | None, *, title: str, device_info: dict, tool_versions: dict,
             policy: dict, plots: list[Path]) -> str:
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] != "ok"]
    lines = [f"# {title}", ""]
    device = device_info.get("name", "?")
    described = ", ".join(f"{k}: {v}" for k, v in device_info.items() if k not in ("name", "max_freq_khz"))
    lines += [f"- **device**: {device} ({described})"]
    lines += ["- **tools**: " + ", ".join(f"{k} {v}" for k, v in sorted(tool_versions.items()) if k != "platform")]
    if policy:
        lines += [f"- **measuring**: warmup ≥ {policy['min_warmup']} runs and ≥ {policy['warmup_time_s']} s, then "
                  f"≥ {policy['min_iters']} samples and ≥ {policy['min_time_s']} s of inference "
                  f"(at most {policy['max_iters']}); median with a bootstrap 95% CI"]
    lines += [f"- **cases**: {len(ok)} measured, {len(failed)} failed", ""]
    for setting in _settings(ok):
        lines += [f"## {setting_label(setting)}", ""]
        header = [name for name, _ in TABLE_COLUMNS]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in (r for r in ok if setting_key(r) == setting):
            lines.append("| " + " | ".join(_cell(r, key) for _, key in TABLE_COLUMNS) + " |")
        lines.append("")
    if baseline:
        lines += [f"## Crossovers against {baseline}", ""]
        found = [c for metric in METRICS for c in crossovers(ok, baseline, metric)]
        lines += [f"- {c.describe()}" for c in found] or ["- none: no model's curve crosses the baseline's "
                                                            "in the measured range"]
        lines.append("")
    if failed:
        lines += ["## Failed cases", ""]
        lines += [f"- {r['model']}/{r['target']}@{r['resolution']}: {r['error']}" for r in failed]
        lines.append("")
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    lines += ["Peak memory is peak resident memory above the runtime's idle baseline (see "
              "docs/benchmarking.md); MACs are per image at each resolution, from the artifact's manifest.", ""]
    return "\n".join(lines)


def write_markdown(path: Path, text: str) -> Path:
    return write_text_atomic(Path(path), text)


def rich_table(rows: list[dict], setting: tuple, title: str | None = None) -> Table:
    table = Table(title=title or setting_label(setting), title_justify="left")
    for name, key in TABLE_COLUMNS:
        table.add_column(name, justify="left" if key == "model" else "right")
    for r in rows:
        if setting_key(r) == setting and r["status"] == "ok":
            table.add_row(*(_cell(r, key) for _, key in TABLE_COLUMNS))
    return table
