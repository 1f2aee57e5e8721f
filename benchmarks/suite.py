"""Predefined sweeps: ``benchmarks/suites/NAME.toml`` (or ``.json``), chosen with ``--suite NAME``.

A suite holds the same settings as the ``bench`` command line (options given
on the command line win). Relative runner paths in an ``[android]`` table are
taken relative to the suite file. ``--suite PATH`` reads a suite file of your own.
"""

from __future__ import annotations

import json
from pathlib import Path

from mobexport.errors import BenchmarkError

SUITES_DIR = Path(__file__).parent / "suites"
TOP_KEYS = {
    "description": str, "models": list, "targets": list, "resolutions": list, "baseline": str, "device": str,
    "threads": int, "batch": int, "quantize": str, "passes": str, "min_time": (int, float), "min_iters": int,
    "max_iters": int, "warmup_time": (int, float), "cpus": list, "android": dict,
}
ANDROID_KEYS = {"adb": str, "executor_runner": str, "ort_perf_test": str, "cooldown_c": (int, float),
                "cooldown_max_s": (int, float), "cooldown_poll_s": (int, float)}


def list_suites() -> dict[str, str]:
    """Shipped suite names -> descriptions."""
    found = {}
    for path in sorted(SUITES_DIR.glob("*")):
        if path.suffix in (".toml", ".json"):
            found[path.stem] = str(_parse(path).get("description", ""))
    return found


def load_suite(name_or_path: str) -> dict:
    """A suite's settings; a shipped name or a path to a .toml/.json file."""
    path = Path(name_or_path)
    if path.suffix not in (".toml", ".json"):
        candidates = [SUITES_DIR / f"{name_or_path}{ext}" for ext in (".toml", ".json")]
        path = next((c for c in candidates if c.is_file()), candidates[0])
        if not path.is_file():
            raise BenchmarkError(f"unknown suite '{name_or_path}'",
                                 f"choose one of: {', '.join(list_suites())} (or give a .toml/.json path)")
    elif not path.is_file():
        raise BenchmarkError(f"suite file '{path}' does not exist", "check the path")
    data = _parse(path)
    _check_keys(data, TOP_KEYS, str(path))
    android = data.get("android", {})
    _check_keys(android, ANDROID_KEYS, f"{path} [android]")
    for key in ("adb", "executor_runner", "ort_perf_test"):
        if key in android and not Path(android[key]).is_absolute():
            android[key] = str((path.parent / android[key]).resolve())
    data["name"] = path.stem
    return data


def _parse(path: Path) -> dict:
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
        else:
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(path.read_text())
    except (ValueError, OSError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise BenchmarkError(f"suite '{path}' cannot be read ({exc})", "fix its syntax") from None
    if not isinstance(data, dict):
        raise BenchmarkError(f"suite '{path}' is not a table of settings", "see docs/benchmarking.md")
    return data


def _check_keys(data: dict, allowed: dict, where: str) -> None:
    for key, value in data.items():
        if key not in allowed:
            raise BenchmarkError(f"{where}: unknown setting '{key}'", f"known: {', '.join(sorted(allowed))}")
        if not isinstance(value, allowed[key]) or isinstance(value, bool):
            raise BenchmarkError(f"{where}: '{key}' has the wrong type ({type(value).__name__})",
                                 "see docs/benchmarking.md for the suite format")
