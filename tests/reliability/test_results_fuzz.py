"""Property-based fuzzing (Hypothesis) of every sweep file mobexport reads back: results.jsonl, baselines
and suites (issue 24, acceptance).

Each example mutates a valid file, byte by byte (cut, delete, insert, flip, duplicate or swap lines) or
structurally (a value anywhere replaced by any JSON value, Infinity and NaN included; a key dropped or
added), then runs the command that reads it. Any mutation must give success or one line and exit 2:
never a traceback, a hang (an alarm fails the example), or a file written outside the output directory.
The number of examples run is printed (``-s``) and checked.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mobexport.benchmarks.sweep import cli as bench_cli
from mobexport.benchmarks.results.records import load_results
from mobexport.benchmarks.sweep.run import SweepOutcome, run_sweep
from mobexport.benchmarks.sweep.plan import SweepPlan
from mobexport.cli import main
from mobexport.devices.measure import MeasurePolicy
from mobexport.errors import MobexportError

from .sweep_helpers import InstantDevice, instant_prepare, sweep_records, write_baseline_file, write_results

# Examples per file kind; MOBEXPORT_FUZZ_SCALE=10 runs ten times as many (a few minutes).
SCALE = float(os.environ.get("MOBEXPORT_FUZZ_SCALE", "1"))
EXAMPLES = {"results": int(80 * SCALE), "baselines": int(200 * SCALE), "suites": int(200 * SCALE)}
RAN: dict[str, int] = {}


def fuzz(kind: str):
    return settings(max_examples=EXAMPLES[kind], deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)


def _paths(value, prefix=()):
    """Every place in a JSON document, as a tuple of keys/indices."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


@st.composite
def structural_mutation(draw, document):
    """A copy of ``document`` with one value replaced, one key dropped, or one key added."""
    doc = json.loads(json.dumps(document))
    places = list(_paths(doc))
    place = draw(st.sampled_from(places))
    action = draw(st.sampled_from(["replace", "drop", "add"]))
    if not place:
        return draw(json_values) if action == "replace" else doc
    parent = doc
    for key in place[:-1]:
        parent = parent[key]
    last = place[-1]
    if action == "replace":
        parent[last] = draw(json_values)
    elif action == "drop":
        del parent[last]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(json_values)
    else:
        parent.insert(last, draw(json_values))
    return doc


@st.composite
def byte_mutation(draw, data: bytes) -> bytes:
    action = draw(st.sampled_from(["cut", "delete", "insert", "flip", "duplicate_line", "swap_lines"]))
    at = draw(st.integers(0, len(data)))
    if action == "cut":
        return data[:at]
    if action == "delete":
        return data[:at] + data[at + draw(st.integers(1, 64)):]
    if action == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=16) | st.sampled_from(
            [b"\n", b"NaN", b"Infinity", b"-1", b'"', b"{", b"]", b"\xff", b"1e999", b"[" * 5000])) + data[at:]
    if action == "flip" and data:
        at = min(at, len(data) - 1)
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    lines = data.split(b"\n")
    i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
    if action == "duplicate_line":
        lines.insert(i, lines[i])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def _alarm(signum, frame):
    raise TimeoutError("a fuzzed file made the command hang")


def run_quietly(argv) -> tuple[int, str]:
    """Run the CLI in this process with its output captured; an alarm turns a hang into a failure."""
    err = io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            status = main([str(a) for a in argv])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return status, err.getvalue()


def check_outcome(kind: str, status: int, err: str) -> None:
    RAN[kind] = RAN.get(kind, 0) + 1
    assert "Traceback" not in err, err
    if status == 2:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), err
    else:
        assert status in (0, 1), (status, err)


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


VALID_RESULTS = "".join(r.to_json() + "\n" for r in sweep_records(seed=1)).encode()


def results_mutations():
    lines = VALID_RESULTS.decode().splitlines()
    structural = st.integers(0, len(lines) - 1).flatmap(
        lambda i: structural_mutation(json.loads(lines[i])).map(
            lambda doc: "\n".join([*lines[:i], json.dumps(doc), *lines[i + 1:]]).encode() + b"\n"))
    return byte_mutation(VALID_RESULTS) | structural


@fuzz("results")
@given(data=results_mutations())
def test_fuzzed_results_files(data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        baseline = write_baseline_file(root / "base.json")
        results = root / "run" / "results.jsonl"
        results.parent.mkdir()
        results.write_bytes(data)
        before = listing(root)
        status, err = run_quietly(["regress", "--baseline", baseline, "--results", results, "--resamples", "100",
                                   "--no-plot", "--markdown", root / "out" / "r.md", "--json", root / "out" / "r.json"])
        check_outcome("results", status, err)
        assert listing(root) - before <= {"out", "out/r.md", "out/r.json"}
        assert results.read_bytes() == data and baseline.read_bytes() == baseline.read_bytes()

        # bench resume over the same file: it resumes, or refuses in one line; the file is never damaged
        out = root / "run"
        plan = SweepPlan(models=["mobilenet_v3_large_100"], targets=["onnx"], resolutions=[160, 224], seed=None)
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                run_sweep(plan, InstantDevice(), out, MeasurePolicy(), prepare_case=instant_prepare)
        except MobexportError as exc:
            assert "\n" not in exc.one_line()
            assert results.read_bytes() == data        # a refused file is left exactly as it was
        else:
            records, torn = load_results(results)
            assert torn is None and results.read_bytes().endswith(b"\n")


VALID_BASELINE = None


def _valid_baseline() -> bytes:
    global VALID_BASELINE
    if VALID_BASELINE is None:
        with tempfile.TemporaryDirectory() as tmp:
            VALID_BASELINE = write_baseline_file(Path(tmp) / "base.json").read_bytes()
    return VALID_BASELINE


def baseline_mutations():
    valid = _valid_baseline()
    return byte_mutation(valid) | structural_mutation(json.loads(valid)).map(lambda d: json.dumps(d).encode())


@fuzz("baselines")
@given(data=baseline_mutations(), update=st.booleans())
def test_fuzzed_baselines(data, update):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = write_results(root / "run" / "results.jsonl", sweep_records(seed=1))
        baseline = root / "base.json"
        baseline.write_bytes(data)
        before = listing(root)
        if update:   # replacing it: refused (not a baseline) or kept in base.json.bak
            status, err = run_quietly(["regress", "--update-baseline", "--results", results, "--baseline", baseline])
            check_outcome("baselines", status, err)
            if status == 0 and "base.json.bak" in listing(root):
                assert (root / "base.json.bak").read_bytes() == data
            else:
                assert baseline.read_bytes() == data or status == 0
            assert listing(root) - before <= {"base.json.bak"}
        else:
            status, err = run_quietly(["regress", "--baseline", baseline, "--results", results, "--resamples", "100",
                                       "--no-plot", "--markdown", root / "out" / "r.md"])
            check_outcome("baselines", status, err)
            assert listing(root) - before <= {"out", "out/r.md"} and baseline.read_bytes() == data


VALID_SUITE = {"description": "fuzz", "models": ["mobilenet_v3_small_075"], "targets": ["pytorch"],
               "resolutions": [96], "min_time": 0.1, "min_iters": 3, "warmup_time": 0, "threads": 1,
               "android": {"cooldown_c": 40}}
VALID_TOML = (b'description = "fuzz"\nmodels = ["mobilenet_v3_small_075"]\ntargets = ["pytorch"]\n'
              b'resolutions = [96]\nmin_time = 0.1\nmin_iters = 3\nwarmup_time = 0\nthreads = 1\n'
              b'[android]\ncooldown_c = 40\n')


def suite_mutations():
    as_json = (byte_mutation(json.dumps(VALID_SUITE).encode())
               | structural_mutation(VALID_SUITE).map(lambda d: json.dumps(d).encode()))
    return st.tuples(st.just(".json"), as_json) | st.tuples(st.just(".toml"), byte_mutation(VALID_TOML))


def _no_sweep(plan, device, out_dir, policy, console=None, **kwargs):
    return SweepOutcome(Path(out_dir) / "results.jsonl")


@fuzz("suites")
@given(suite=suite_mutations())
def test_fuzzed_suites(suite):
    suffix, data = suite
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench_cli, "run_sweep", _no_sweep)   # what is fuzzed is reading the suite, not timing
        root = Path(tmp)
        path = root / f"suite{suffix}"
        path.write_bytes(data)
        status, err = run_quietly(["bench", "--suite", path, "--device", "local", "--out", root / "out"])
        check_outcome("suites", status, err)
        assert {p.split("/")[0] for p in listing(root)} <= {path.name, "out"}


def test_zz_report_how_many_examples_ran():
    """Runs after the fuzz tests of this file (pytest keeps file order): every fuzzed reader ran its examples."""
    print("\nfuzz examples run: " + ", ".join(f"{kind} {count}" for kind, count in sorted(RAN.items())))
    for kind, count in RAN.items():
        assert count >= EXAMPLES[kind] // 2, (kind, count)
