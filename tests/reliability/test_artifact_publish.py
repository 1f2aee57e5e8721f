"""Publishing artifacts: atomic for readers and writers, interruptible anywhere, never deleting a user's file.

Issue 24 items 7, 8, 9 (export side) and issue 23 item 11. The writers here are
small processes that run the real staging and publishing code
(:func:`staging_directory`) around a slow fake converter, so kills, races and
signals hit every step of publishing in well under a minute; the real-export
version of the kill test is in ``test_export_faults.py``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mobexport.errors import OutputDirError
from mobexport.export.artifact import Artifact, staging_directory
from mobexport.manifest import MANIFEST_NAME, Manifest, current_umask, sha256_tree

WRITER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from mobexport import signals
    from mobexport.export.artifact import staging_directory
    from mobexport.manifest import Manifest, sha256_tree

    signals.install()
    final, tag, chunks, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    try:
        for r in range(rounds):
            with staging_directory(final) as staging:
                main_file = staging / "model.onnx"
                with open(main_file, "wb") as out:
                    for i in range(chunks):
                        out.write(f"{tag}-{r}-{i}\\n".encode() * 2000)
                        out.flush()
                        time.sleep(0.005)
                Manifest(model={"name": "m"}, target="onnx", resolution={"export": 96},
                         artifact={"file": "model.onnx", "size_bytes": main_file.stat().st_size,
                                   "sha256": sha256_tree(main_file)}).write(staging)
    except KeyboardInterrupt as exc:
        sys.exit(getattr(exc, "exit_code", 130))
''')

READER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from mobexport.export.artifact import Artifact

    final, seconds = Path(sys.argv[1]), float(sys.argv[2])
    verified = mismatched = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with Artifact.reading(final) as artifact:
            if artifact.verify_hash():
                verified += 1
            else:
                mismatched += 1
    print(verified, mismatched)
    sys.exit(1 if mismatched or not verified else 0)
''')


def start_writer(final: Path, tag: str, chunks: int = 5, rounds: int = 1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(final), tag, str(chunks), str(rounds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def publish_by_hand(final: Path, payload: bytes = b"payload", extra: dict[str, bytes] | None = None) -> None:
    with staging_directory(final) as staging:
        (staging / "model.onnx").write_bytes(payload)
        for name, data in (extra or {}).items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(data)
        Manifest(model={"name": "m"}, target="onnx", resolution={"export": 96},
                 artifact={"file": "model.onnx", "size_bytes": len(payload),
                           "sha256": sha256_tree(staging / "model.onnx")}).write(staging)


def debris(parent: Path, name: str = "onnx") -> list[str]:
    """Entries beside the artifact that are not the published link and the one version it points at."""
    published = os.readlink(parent / name) if (parent / name).is_symlink() else None
    return sorted(p.name for p in parent.iterdir() if p.name not in (name, published))


def assert_intact(final: Path) -> None:
    with Artifact.reading(final) as artifact:
        assert artifact.verify_hash(), f"{final} does not verify"


def dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


# --------------------------------------------------------------------------- 8. atomic for readers and writers


def test_concurrent_writers_and_readers_never_see_a_gap_or_a_false_mismatch(tmp_path):
    """Old code: two renames (a window without an artifact, OSError for concurrent finishers), and an
    inspect during a re-export hashed the new file against the old manifest."""
    final = tmp_path / "out" / "m" / "onnx"
    publish_by_hand(final)
    writers = [start_writer(final, f"w{i}", chunks=3, rounds=6) for i in range(3)]
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(final), "6"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for process in writers + readers:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, (out, err)
    assert_intact(final)
    assert debris(final.parent) == []


# --------------------------------------------------------------------------- fault injection: SIGKILL anywhere


def test_sigkill_at_random_points_loses_no_published_artifact_and_leaves_no_debris_after_the_next_run(tmp_path):
    seed = int(os.environ.get("MOBEXPORT_FAULT_SEED", "24"))
    rng = random.Random(seed)
    final = tmp_path / "out" / "m" / "onnx"
    publish_by_hand(final)
    kills = 0
    batch = 4
    while kills < 24:
        # Several at once: they race each other as well as the kill.
        writers = [start_writer(final, f"k{kills + i}", chunks=rng.randint(1, 30)) for i in range(batch)]
        for process in writers:
            time.sleep(rng.uniform(0, 0.4))
            process.send_signal(signal.SIGKILL)
        for process in writers:
            process.wait(timeout=60)
        kills += batch
        assert_intact(final)  # a completed artifact is never lost, whatever step the kill hit (seed {seed})
    survivor = start_writer(final, "next")
    assert survivor.wait(timeout=60) == 0, survivor.stderr.read()
    assert_intact(final)
    assert debris(final.parent) == [], f"seed {seed}"


# --------------------------------------------------------------------------- 9. signals and stale staging


def test_sigterm_during_an_export_cleans_its_staging_and_reports_one_line(tmp_path):
    """Old code ran no cleanup on SIGTERM: the .partial-* directory stayed."""
    out = tmp_path / "out"
    script = textwrap.dedent('''
        import sys, time
        from mobexport.cli import main
        from mobexport.export import pipeline
        from mobexport.export.artifact import staging_directory

        def slow_export(config, on_step=None):
            with staging_directory(config.artifact_dir()) as staging:
                (staging / "model.onnx").write_bytes(b"half")
                time.sleep(120)

        pipeline.export_model = slow_export
        sys.exit(main(["--model", "mobilenet_v3_small_075", "--target", "onnx", "--out", sys.argv[1]]))
    ''')
    process = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})
    parent = out / "mobilenet_v3_small_075"
    deadline = time.monotonic() + 60
    while not (parent.is_dir() and any(".partial-" in p.name for p in parent.iterdir())):
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert process.returncode in (130, 143), err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert list(parent.iterdir()) == []


def test_stale_staging_of_dead_processes_is_swept_by_the_next_export(tmp_path):
    parent = tmp_path / "out" / "m"
    parent.mkdir(parents=True)
    stale = parent / f".onnx.partial-{dead_pid()}-abc"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "model.onnx").write_bytes(b"half")
    stale_link = parent / f".coreml.link-{dead_pid()}-abc"
    stale_link.symlink_to(".coreml.v-x")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = parent / f".onnx.partial-{alive.pid}-def"
        live.mkdir()
        publish_by_hand(parent / "onnx")
        assert not os.path.lexists(stale) and not os.path.lexists(stale_link)
        assert live.is_dir(), "a running export's staging must not be swept"
    finally:
        alive.kill()
        alive.wait()


def test_an_aside_directory_of_the_old_two_rename_swap_is_swept(tmp_path):
    parent = tmp_path / "out" / "m"
    publish_by_hand(parent / "onnx")
    aside = parent / f".onnx.old-{dead_pid()}"
    aside.mkdir()
    (aside / "model.onnx").write_bytes(b"old")
    Manifest(model={"name": "m"}, target="onnx", resolution={"export": 96},
             artifact={"file": "model.onnx", "sha256": sha256_tree(aside / "model.onnx")}).write(aside)
    publish_by_hand(parent / "onnx", b"new")
    assert not aside.exists() and debris(parent) == []


# --------------------------------------------------------------------------- 7. never delete a user's file


def test_reexport_keeps_files_mobexport_did_not_write(tmp_path):
    """Old code replaced the whole directory: a user's notes beside the artifact were deleted."""
    final = tmp_path / "out" / "m" / "onnx"
    publish_by_hand(final, b"first", extra={"labels.txt": b"ours"})
    (final / "my_notes.md").write_text("measured on my phone")
    (final / "my_dir").mkdir()
    (final / "my_dir" / "data.bin").write_bytes(b"\x01\x02")
    publish_by_hand(final, b"second")
    assert (final / "my_notes.md").read_text() == "measured on my phone"
    assert (final / "my_dir" / "data.bin").read_bytes() == b"\x01\x02"
    assert not (final / "labels.txt").exists(), "a file mobexport wrote before is not kept"
    assert (final / "model.onnx").read_bytes() == b"second"
    assert debris(final.parent) == []


def test_a_user_file_named_like_a_new_artifact_file_is_kept_aside(tmp_path):
    final = tmp_path / "out" / "m" / "onnx"
    publish_by_hand(final)
    (final / "labels.txt").write_text("the user's own labels")
    publish_by_hand(final, extra={"labels.txt": b"mobexport's labels"})
    kept = [p for p in final.parent.glob(".onnx.v-*/labels.txt") if p.read_text() == "the user's own labels"]
    assert kept, "the user's file was deleted"


def test_an_artifact_directory_from_before_versioning_is_migrated_keeping_user_files(tmp_path):
    final = tmp_path / "out" / "m" / "onnx"
    final.mkdir(parents=True)
    (final / "model.onnx").write_bytes(b"old")
    Manifest(model={"name": "m"}, target="onnx", resolution={"export": 96},
             artifact={"file": "model.onnx", "sha256": sha256_tree(final / "model.onnx")}).write(final)
    (final / "README.txt").write_text("mine")
    publish_by_hand(final, b"new")
    assert final.is_symlink() and (final / "README.txt").read_text() == "mine"
    assert (final / "model.onnx").read_bytes() == b"new"
    assert debris(final.parent) == []


@pytest.mark.parametrize("kind", ["directory", "file", "foreign symlink"])
def test_something_that_is_not_an_artifact_is_never_replaced(tmp_path, kind):
    final = tmp_path / "out" / "m" / "onnx"
    final.parent.mkdir(parents=True)
    if kind == "directory":
        final.mkdir()
        (final / "thesis.tex").write_text("years of work")
    elif kind == "file":
        final.write_text("years of work")
    else:
        (tmp_path / "elsewhere").mkdir()
        final.symlink_to(tmp_path / "elsewhere")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(OutputDirError):
        publish_by_hand(final)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


# --------------------------------------------------------------------------- 23.11 modes


def test_published_files_and_directories_get_the_umask_modes(tmp_path):
    """Old code chmodded only the staging directory: a Core ML package's files stayed 0600/0700."""
    final = tmp_path / "out" / "m" / "coreml"
    with staging_directory(final) as staging:
        package = staging / "model.mlpackage" / "Data"
        package.mkdir(parents=True, mode=0o700)
        (staging / "model.mlpackage").chmod(0o700)
        weights = package / "weight.bin"
        weights.write_bytes(b"w")
        weights.chmod(0o600)
        Manifest(model={"name": "m"}, target="coreml", resolution={"export": 96},
                 artifact={"file": "model.mlpackage", "sha256": sha256_tree(staging / "model.mlpackage")}
                 ).write(staging)
    umask = current_umask()
    resolved = final.resolve()
    for path in [resolved, *resolved.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert mode == expected, (path, oct(mode), oct(expected))
    assert json.loads((final / MANIFEST_NAME).read_text())["artifact"]["file"] == "model.mlpackage"
