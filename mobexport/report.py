"""What the CLI prints: progress, summary tables, manifests."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mobexport.manifest import RANDOM_WEIGHTS_NOTE, Manifest


def human_count(n: float, unit: str = "") -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def human_bytes(n: float) -> str:
    for scale, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= scale:
            return f"{n / scale:.1f} {suffix}"
    return f"{n:.0f} B"


@contextlib.contextmanager
def step_progress(console: Console, title: str, total: int) -> Iterator[Callable[[str], None]]:
    """A progress bar advanced once per named step; yields the advance callback."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[title]}[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        # Piped or captured stderr gets no bar: scripts read one clean line per message.
        disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task("starting", total=total, title=title)
        first = [True]

        def advance(step: str) -> None:
            progress.update(task, description=step, advance=0 if first[0] else 1)
            first[0] = False

        yield advance
        progress.update(task, completed=total)


def print_export_summary(console: Console, artifact) -> None:
    m: Manifest = artifact.manifest
    if m.random_weights:
        console.print(f"[bold yellow]{RANDOM_WEIGHTS_NOTE}[/] (no --checkpoint given)")
    table = Table(title=f"{m.model.get('name', '?')} -> {m.target}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    res = m.resolution
    if res.get("dynamic"):
        accepted = f"{res.get('min', '?')}..{res.get('max', '?')} step {res.get('stride', '?')}"
    else:
        accepted = "static"
    table.add_row("artifact", str(artifact.display_path))
    if "size_bytes" in m.artifact:
        table.add_row("size", human_bytes(m.artifact["size_bytes"]))
    table.add_row("resolution", f"{res.get('size') or res['export']} ({accepted})")
    if m.params:
        table.add_row("params", f"{human_count(m.params)} ({m.params:,}: {m.params_definition})")
    macs = m.macs
    if "total_macs" in macs:
        table.add_row("MACs", f"{human_count(macs['total_macs'])} @{macs.get('size') or macs.get('resolution', res['export'])}")
    for p in m.parity:
        verdict = "[green]ok[/]" if p["passed"] else "[red]FAILED[/]"
        top1 = "no logits output" if p["top1_agreement"] is None else f"top-1 {p['top1_agreement']:.0%}"
        outputs = f", {len(p['outputs'])} outputs" if len(p.get("outputs") or []) > 1 else ""
        table.add_row(
            f"parity @{p.get('size') or p['resolution']}",
            f"{verdict} max|err| {p['max_abs_error']:.2e}, cos {p['cosine']:.6f}, "
            f"{top1} ({p['samples']} inputs{outputs}, {p['tolerance']['name']} tolerance)",
        )
    if m.quantization.get("mode", "none") != "none":
        from mobexport.export.quantize.report import summary_rows

        try:
            rows = list(summary_rows(m.quantization))
        except (KeyError, TypeError, ValueError, AttributeError):  # an older or partial quantization record
            rows = [("quantization", format_detail("quantization", m.quantization))]
        for label, text in rows:
            table.add_row(label, text)
    t = m.timings_s
    if t:
        table.add_row("time", ", ".join(f"{k} {v:.1f}s" for k, v in t.items()))
    for note in m.notes:
        if note != RANDOM_WEIGHTS_NOTE:  # already the first line
            table.add_row("note", escape(note))
    console.print(table)


def print_pass_report(console: Console, passes: list[dict], target: str = "", left_out: tuple[str, ...] = ()) -> None:
    """The graph passes an export ran (``--explain``): rewrites, skipped sites grouped by reason, time.

    ``left_out``: default passes the target does not run, because its runtime measured slower with them.
    """
    if not passes:
        console.print("graph passes: none ran (--passes none)")
        return
    table = Table(title="graph passes", title_justify="left")
    table.add_column("pass", style="bold", no_wrap=True)
    table.add_column("rewrites", justify="right", no_wrap=True)
    table.add_column("skipped sites: count x reason (first sites)")
    table.add_column("details")
    table.add_column("time", justify="right", no_wrap=True)
    for p in passes:
        by_reason: dict[str, list[str]] = {}
        for skip in p.get("skipped", []):
            by_reason.setdefault(skip["reason"], []).append(skip["site"])
        skipped = "\n".join(
            f"{len(sites)} x {reason} ({', '.join(sites[:3])}{', ...' if len(sites) > 3 else ''})"
            for reason, sites in sorted(by_reason.items(), key=lambda item: -len(item[1]))
        ) or "-"
        details = {k: v for k, v in p.get("details", {}).items() if k != "seconds"}
        seconds = p.get("details", {}).get("seconds")
        table.add_row(p["id"], str(p.get("rewrites", 0)), skipped,
                      ", ".join(f"{k}: {v:.2g}" if isinstance(v, float) else f"{k}: {format_detail(k, v)}"
                                for k, v in details.items()) or "-",
                      "-" if seconds is None else f"{seconds:.2f}s")
    console.print(table)
    if left_out:
        console.print(f"left out of {target}'s default, slower on its runtime (docs/passes.md): "
                      f"{', '.join(left_out)}; name one in --passes to run it")


def print_model_list(console: Console, pattern: str | None, measure: bool = False, as_json: bool = False) -> int:
    """The zoo (or the models ``pattern`` matches: name, prefix, substring or glob) and each target's status here."""
    import json

    import torch

    from mobexport.errors import UnknownModelError
    from mobexport.export.targets import get_target, target_names
    from mobexport.models import create_model, get_spec
    from mobexport.models.registry import closest_models, list_models, match_models

    names = match_models(pattern) if pattern else list_models()
    if not names:
        close = closest_models(pattern)
        hint = f"closest: {', '.join(close)}" if close else "run 'mobexport list' to see the zoo"
        raise UnknownModelError(f"no model matches '{pattern}'", hint)
    targets = {name: get_target(name).status_here() for name in target_names()}
    rows = []
    for name in names:
        spec = get_spec(name)
        with torch.device("meta"):
            params = sum(p.numel() for p in create_model(name).parameters())
        row = {"name": name, "family": spec.family, "params": params, "reference_macs": spec.reference_macs,
               "default_resolution": spec.default_resolution, "accepts": str(spec.resolutions)}
        if measure:
            from mobexport.export.macs import count_macs
            from mobexport.export.trace import trace

            row["measured_macs"] = count_macs(trace(create_model(name), spec, spec.default_resolution).program,
                                              spec.default_resolution).total_macs
        rows.append(row)
    if as_json:
        targets_json = {name: {"state": state, "detail": detail} for name, (state, detail) in targets.items()}
        console.file.write(json.dumps({"models": rows, "targets": targets_json}, indent=1) + "\n")
        return 0
    table = Table(title=f"mobexport zoo ({len(names)} model{'s' * (len(names) != 1)})", title_justify="left")
    for column, justify in (("model", "left"), ("family", "left"), ("params", "right"),
                            ("MACs @default", "right"), ("default res", "right"), ("accepts", "left")):
        table.add_column(column, justify=justify, no_wrap=True)
    for row in rows:
        macs = (human_count(row["measured_macs"]) if measure else f"{human_count(row['reference_macs'])} (ref)")
        table.add_row(row["name"], row["family"], human_count(row["params"]), macs, str(row["default_resolution"]),
                      row["accepts"])
    console.print(table)
    if not measure:
        console.print("MACs are the check-table references the test suite holds the zoo to (within 5%); "
                      "--measure traces each model and counts them.", style="dim")
    status = Table(title="targets on this host", title_justify="left", show_header=False)
    status.add_column(style="bold", no_wrap=True)
    status.add_column(no_wrap=True)
    status.add_column()
    colour = {"ready": "green", "partial": "yellow", "missing": "red"}
    for name, (state, detail) in targets.items():
        status.add_row(name, f"[{colour[state]}]{state}[/]", detail)
    console.print(status)
    return 0


def print_passes(console: Console, as_json: bool = False) -> int:
    """The registered graph passes: id, whether the default pipeline runs it, and what it does."""
    import json

    from mobexport.export.passes.registry import _PASSES, available_passes, default_pipeline

    default = default_pipeline()
    rows = [{"id": pass_id, "default": pass_id in default, "after": list(_PASSES[pass_id].after),
             "description": _PASSES[pass_id].description} for pass_id in available_passes()]
    if as_json:
        console.file.write(json.dumps(rows, indent=1) + "\n")
        return 0
    table = Table(title="graph passes (--passes default | none | id,id,...)", title_justify="left")
    table.add_column("pass", style="bold", no_wrap=True)
    table.add_column("default", no_wrap=True)
    table.add_column("what it does")
    for row in rows:
        table.add_row(row["id"], "yes" if row["default"] else "no", row["description"] or "-")
    console.print(table)
    console.print(f"default order: {', '.join(default)}", highlight=False)
    return 0


def delegation_summary(d: dict) -> str:
    """One line on how much of an ExecuTorch program its delegate runs."""
    total = d["ops_delegated"] + d["ops_portable"]
    line = (f"{d['delegate_subgraphs']} {d.get('backend', '')} subgraph(s); "
            f"{d['ops_delegated']}/{total} ops ({d['op_coverage']:.0%}) and {d['mac_coverage']:.1%} of MACs delegated")
    slow = d.get("portable_ops_on_activations", d["portable_ops"])
    if slow:
        line += "; on portable kernels: " + ", ".join(f"{k} x{v}" for k, v in list(slow.items())[:6])
    if d["ops_portable"] > sum(slow.values()):
        line += f"; {d['ops_portable'] - sum(slow.values())} portable op(s) on constants only"
    return line


def format_detail(key: str, value, limit: int = 12, depth: int = 0) -> str:
    """A target detail as text: bytes, MACs and fractions in units, long collections shortened.

    Total over JSON values: a manifest is untrusted, so any value of any shape prints.
    """
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(value, bool) or value is None:
        return str(value)
    if depth > 3 and isinstance(value, (dict, list)):
        return "…"
    if key.endswith("_bytes") and number:
        return human_bytes(value)
    if key.endswith("_bytes") and isinstance(value, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return ", ".join(human_bytes(v) for v in value[:limit]) or "none"
    if key.startswith("macs_") and number:
        return human_count(value)
    if key.endswith("coverage") and isinstance(value, float):
        return f"{value:.1%}"
    if isinstance(value, dict):
        items = list(value.items())
        text = ", ".join(f"{k}: {format_detail(str(k), v, limit, depth + 1)}" for k, v in items[:limit])
        return text + (f", ... ({len(items)} in all)" if len(items) > limit else "")
    if isinstance(value, list):
        if value and all(isinstance(v, dict) and "name" in v for v in value):
            return "; ".join(f"{v['name']} {_shape_text(v.get('shape'))}".strip() for v in value[:limit])
        text = ", ".join(format_detail(key, v, limit, depth + 1) for v in value[:limit])
        return text + (f", ... ({len(value)} in all)" if len(value) > limit else "")
    return str(value)


def _shape_text(shape) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(format_detail("dim", d, depth=4) for d in shape) + "]"
    return "" if shape is None else format_detail("shape", shape, depth=4)


def print_manifest(console: Console, path: Path, raw: bool = False) -> int:
    """``mobexport inspect``: the manifest, readable or as JSON, and the artifact's re-verified sha256.

    Both forms check the hash, under the artifact's read lock (a re-export
    finishing meanwhile cannot swap the file under the check); a mismatch is an
    error after the manifest is shown.
    """
    from mobexport.export.artifact import Artifact
    from mobexport.manifest import ManifestError

    with Artifact.reading(path) as artifact:
        verified = artifact.verify_hash()
    m = artifact.manifest
    if raw:
        data = json.loads(m.to_json())
        data["verification"] = {"sha256_verified": verified, "path": str(artifact.display_path)}
        console.print_json(json.dumps(data))
    else:
        print_export_summary(console, artifact)
        console.print(manifest_details(m))
        if verified:
            console.print(f"[green]sha256 verified[/] {m.artifact['sha256'][:16]}…")
    if verified:
        return 0
    if not os.path.lexists(artifact.path):
        raise ManifestError(f"artifact '{artifact.display_path}' is missing", "re-export it")
    raise ManifestError(f"artifact '{artifact.display_path}' does not match its manifest's sha256",
                        "the file changed since export; re-export it")


def manifest_details(m: Manifest) -> Table:
    """The manifest's remaining facts, each as readable text (never a raw dict)."""
    details = Table(title="target details", show_header=False, title_justify="left")
    details.add_column(style="bold")
    details.add_column()
    if "delegate_subgraphs" in m.target_details:
        try:
            details.add_row("delegation", delegation_summary(m.target_details))
        except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError):
            pass  # an incomplete delegation record: its keys are listed below anyway
    for key, value in m.target_details.items():
        details.add_row(escape(str(key)), escape(format_detail(str(key), value)))
    checkpoint = m.checkpoint.get("path") or ("none: random weights" if m.random_weights else "none")
    details.add_row("checkpoint", escape(f"{checkpoint} (sha256 {m.checkpoint.get('sha256', '?')})"))
    details.add_row("quantization", escape(format_detail("quantization", m.quantization)))
    details.add_row("passes", escape(", ".join(f"{p['id']} ({p.get('rewrites', 0)})" for p in m.passes) or "none"))
    details.add_row("tools", escape(", ".join(f"{k} {v}" for k, v in m.tool_versions.items() if k != "platform")))
    details.add_row("created", escape(f"{m.created} by mobexport {m.mobexport_version} "
                                      f"(revision {m.mobexport_revision}, schema {m.schema_version})"))
    return details
