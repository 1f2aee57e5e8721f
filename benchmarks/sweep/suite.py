"""Predefined sweeps: ``benchmarks/sweep/suites/NAME.toml`` (or ``.json``), chosen with ``--suite NAME``.

A suite holds the same settings as the ``bench`` command line (options given
on the command line win). Relative runner paths in an ``[android]`` table are
taken relative to the suite file. ``--suite PATH`` reads a suite file of your own.
"""

from __future__ import annotations

from pathlib import Path

from mobexport.errors import BenchmarkError, first_line

from mobexport.safe_files import loads_json, read_untrusted_text
from mobexport.benchmarks.results.schemas import check

SUITES_DIR = Path(__file__).parent / "suites"
SUITE_HINT = "see docs/benchmarking.md for the suite format"
MAX_SUITE_BYTES = 2**20


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
    elif not path.exists():
        raise BenchmarkError(f"suite file '{path}' does not exist", "check the path")
    data = _parse(path)
    check(data, "suite", f"suite '{path}'", SUITE_HINT)
    android = data.get("android", {})
    for key in ("adb", "executor_runner", "ort_perf_test", "benchmark_model"):
        if key in android and not Path(android[key]).is_absolute():
            android[key] = str((path.parent / android[key]).resolve())
    data["name"] = path.stem
    return data


def _parse(path: Path) -> dict:
    text = read_untrusted_text(path, "suite", "check the path", limit=MAX_SUITE_BYTES)
    if path.suffix == ".json":
        data = loads_json(text, f"suite '{path}'", "fix its syntax")
    else:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except (ValueError, RecursionError) as exc:  # TOMLDecodeError is a ValueError
            raise BenchmarkError(f"suite '{path}' cannot be read ({first_line(exc, 200)})", "fix its syntax") from None
    if not isinstance(data, dict):
        raise BenchmarkError(f"suite '{path}' is not a table of settings", SUITE_HINT)
    return data
