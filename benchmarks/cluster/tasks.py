"""The two kinds of Ray task of a cluster sweep, as plain functions (the driver wraps them).

Both return plain dataclasses instead of raising: an exception from a task
may not unpickle on the driver, and a failed case is an answer, not a crash.
Only the loss of the node or worker itself reaches the driver as a Ray error.
"""

from __future__ import annotations

import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mobexport.devices.device import CaseFailed, CaseJob, Measurement
from mobexport.errors import MobexportError, first_line

from ..results.records import CaseKey
from .bundles import artifact_sha256, pack, unpack


@dataclass
class ExportResult:
    """One export (or reuse) on some node: the artifact as a bundle, or why it failed."""

    bundle: bytes | None = None
    sha256: str | None = None
    macs: int | None = None
    params: int | None = None
    reused: bool = False
    node_id: str | None = None
    seconds: float = 0.0
    error: str | None = None


@dataclass
class MeasureResult:
    """One case measured on the node owning its device, or why not."""

    measurement: Measurement | None = None
    error: str | None = None
    device_info: dict = field(default_factory=dict)
    node: dict = field(default_factory=dict)        # node_id, host, started/ended (Unix time)


def _node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # not in a Ray worker (called directly in a test)
        return None


def export_case(case: CaseKey, store: str | None, verbosity: int) -> ExportResult:
    """Export ``case`` (or reuse it from ``store`` / this node's export cache) into a scratch directory."""
    from mobexport import logs

    from ..sweep.artifacts import prepare

    logs.setup(verbosity)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mobexport-export-") as scratch:
        try:
            if store is not None:
                prepared = prepare(case, Path(scratch), cache_dir=Path(store))
            else:
                prepared = prepare(case, Path(scratch))
        except Exception as exc:  # this export failed; the sweep records it and goes on
            return ExportResult(node_id=_node_id(), error=f"{type(exc).__name__}: {first_line(exc)}",
                                seconds=time.perf_counter() - started)
        artifact = prepared.artifact
        return ExportResult(bundle=pack(artifact.directory) if artifact else None,
                            sha256=artifact_sha256(artifact) if artifact else None,
                            macs=prepared.macs, params=prepared.params, reused=prepared.reused,
                            node_id=_node_id(), seconds=time.perf_counter() - started)


def measure_case(device_name: str, options, job: dict, bundle: bytes | None, sha256: str | None) -> MeasureResult:
    """Measure one case on this node's device ``device_name`` (the task holds its resource)."""
    from mobexport.devices.registry import get_device

    from .resources import node_device_spec

    node = {"node_id": _node_id(), "host": socket.gethostname()}
    info: dict = {"name": device_name}
    with tempfile.TemporaryDirectory(prefix="mobexport-case-") as scratch:
        case_job = CaseJob.from_dict(job)
        try:
            if bundle is not None:
                case_job.artifact_path = unpack(bundle, Path(scratch) / "artifact", sha256).path
            device = get_device(node_device_spec(device_name), options)
            node["started"] = time.time()
            with device:
                device.require()
                info = device.info()
                measurement = device.measure(case_job)
        except CaseFailed as exc:
            return MeasureResult(error=str(exc), device_info=info, node=_ended(node))
        except MobexportError as exc:  # the device went away or cannot run it: this case fails, not the sweep
            return MeasureResult(error=f"device {device_name}: {exc.one_line()}", device_info=info, node=_ended(node))
        except Exception as exc:
            return MeasureResult(error=f"{type(exc).__name__}: {first_line(exc)}", device_info=info,
                                 node=_ended(node))
    return MeasureResult(measurement=measurement, device_info=info, node=_ended(node))


def _ended(node: dict) -> dict:
    node.setdefault("started", time.time())
    node["ended"] = time.time()
    return node
