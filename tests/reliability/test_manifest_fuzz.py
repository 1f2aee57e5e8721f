"""Property: any mutation of a valid manifest makes ``mobexport inspect`` succeed or say one line and exit 2.

Never a traceback, never a hang, never a write anywhere. Mutations are both
byte-level (flips, truncation, insertion of arbitrary bytes) and JSON-level
(a value anywhere replaced by another JSON value, a key removed or added, the
manifest wrapped or replaced), so the schema and every printer behind it are
exercised with the shapes real corruption and hand edits produce.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mobexport.cli import main
from mobexport.manifest import MANIFEST_NAME, Manifest, sha256_tree

PAYLOAD = b"onnx bytes"
_COMMON = dict(deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
LONG_FUZZ_SETTINGS = settings(max_examples=2000, **_COMMON)
FUZZ_SETTINGS = settings(max_examples=100, derandomize=True, **_COMMON)


def valid_manifest(main_file: Path) -> dict:
    manifest = Manifest(
        model={"name": "mobilenet_v3_small_075", "family": "mobilenetv3", "num_classes": 1000,
               "reference_params": 2_040_000, "reference_macs": 44_000_000, "default_resolution": 224,
               "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        target="executorch",
        artifact={"file": main_file.name, "size_bytes": len(PAYLOAD), "sha256": sha256_tree(main_file)},
        resolution={"export": 96, "dynamic": True, "min": 64, "max": 256, "stride": 32},
        passes=[{"id": "fold_batchnorm", "rewrites": 34, "skipped": [{"site": "bn1", "reason": "shared"}],
                 "details": {"seconds": 0.5, "verified_max_relative_error": 1e-7}}],
        quantization={"mode": "int8", "scheme": "static", "calibration": {"samples": 8}},
        parity=[{"resolution": 96, "passed": True, "max_abs_error": 1e-6, "cosine": 1.0, "top1_agreement": 1.0,
                 "samples": 8, "tolerance": {"name": "fp32"}}],
        tolerance={"name": "fp32", "max_abs_error": 1e-4},
        macs={"total_macs": 9_400_000, "resolution": 96},
        params=2_041_872,
        timings_s={"build": 0.2, "lower": 9.3},
        target_details={"delegate_subgraphs": 1, "backend": "xnnpack", "ops_delegated": 10, "ops_portable": 2,
                        "op_coverage": 0.8, "mac_coverage": 0.99, "portable_ops": {"aten.add": 2},
                        "planned_memory_bytes": [1024, 2048], "inputs": [{"name": "x", "shape": [1, 3, 96, 96]}]},
        notes=["a note"],
        command=["mobexport", "--model", "mobilenet_v3_small_075"],
        variant={"resolution": 96},
    )
    return json.loads(manifest.to_json())


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


def check_inspect(capsys, manifest_bytes: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        directory = root / "out" / "m" / "executorch"
        directory.mkdir(parents=True)
        (directory / "model.pte").write_bytes(PAYLOAD)
        (root / "outside.bin").write_bytes(b"outside")
        (directory / MANIFEST_NAME).write_bytes(manifest_bytes)
        before = tree_snapshot(root)
        capsys.readouterr()
        for argv in (["inspect", str(directory)], ["inspect", str(directory), "--json"]):
            status = main(argv)  # an exception here (a traceback for the user) fails the property
            captured = capsys.readouterr()
            lines = [line for line in captured.err.splitlines() if line.strip()]
            assert status in (0, 2), (status, captured.err)
            if status == 2:
                assert len(lines) == 1 and lines[0].startswith("error:"), captured.err
            assert "Traceback" not in captured.err
        assert tree_snapshot(root) == before, "inspect wrote something"


def json_values():
    return st.recursive(
        st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
        | st.sampled_from(["../outside.bin", "/", "..", ".", "model.pte", "/etc/passwd", "", "a/b"]),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
        max_leaves=8,
    )


def paths_in(value, prefix=()):
    """Every (path, container) position in a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths_in(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths_in(child, prefix + (index,))


def replaced(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = replaced(value[head], rest, new)
    return copy


def removed(value, path):
    head, rest = path[0], path[1:]
    if rest:
        container = value[head]
        return replaced(value, (head,), removed(container, rest))
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k != head}
    return [v for i, v in enumerate(value) if i != head]


@st.composite
def json_mutations(draw):
    base = valid_manifest(Path("model.pte"))
    base["artifact"]["sha256"] = sha256_tree_of_payload()
    mutated = base
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        positions = list(paths_in(mutated))
        path = draw(st.sampled_from(positions))
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "remove" and path:
            mutated = removed(mutated, path)
        elif action == "add":
            target = path if isinstance(_at(mutated, path), dict) else ()
            if isinstance(_at(mutated, target), dict):
                key = draw(st.text(max_size=8))
                mutated = replaced(mutated, target, {**_at(mutated, target), key: draw(json_values())})
        else:
            mutated = replaced(mutated, path, draw(json_values()))
    return json.dumps(mutated).encode()


def _at(value, path):
    for part in path:
        value = value[part]
    return value


def sha256_tree_of_payload() -> str:
    import hashlib

    return hashlib.sha256(PAYLOAD).hexdigest()


@st.composite
def byte_mutations(draw):
    base = json.dumps(valid_manifest(Path("model.pte"))).encode()
    base = base.replace(b'"sha256": "', b'"sha256": "' + sha256_tree_of_payload().encode() + b'",  "x": "', 1)
    data = bytearray(base)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        at = draw(st.integers(min_value=0, max_value=max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(min_value=1, max_value=255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            del data[at:at + draw(st.integers(min_value=1, max_value=16))]
    return bytes(data)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")


def test_the_unmutated_manifest_inspects(capsys):
    base = valid_manifest(Path("model.pte"))
    base["artifact"]["sha256"] = sha256_tree_of_payload()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "model.pte").write_bytes(PAYLOAD)
        (directory / MANIFEST_NAME).write_text(json.dumps(base))
        assert main(["inspect", str(directory)]) == 0
        assert "sha256 verified" in capsys.readouterr().out


@FUZZ_SETTINGS
@given(manifest=json_mutations())
def test_json_level_mutations(capsys, manifest):
    check_inspect(capsys, manifest)


@FUZZ_SETTINGS
@given(manifest=byte_mutations())
def test_byte_level_mutations(capsys, manifest):
    check_inspect(capsys, manifest)


@pytest.mark.slow
@LONG_FUZZ_SETTINGS
@given(manifest=json_mutations() | byte_mutations())
def test_many_more_mutations(capsys, manifest):
    """The long run (random seed each time): 2000 mixed mutations."""
    check_inspect(capsys, manifest)


@settings(max_examples=5, deadline=None, database=None, derandomize=True)
@given(manifest=json_mutations())
def test_mutations_through_the_installed_command_do_not_hang(manifest):
    """The real process, with a timeout: a hang or a crash at exit would show here, not in-process."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "model.pte").write_bytes(PAYLOAD)
        (directory / MANIFEST_NAME).write_bytes(manifest)
        done = subprocess.run([sys.executable, "-m", "mobexport.cli", "inspect", str(directory)], timeout=60,
                              capture_output=True, text=True, env={**os.environ, "COLUMNS": "400"})
        assert done.returncode in (0, 2) and "Traceback" not in done.stderr, done.stderr
