"""Which Ray cluster ``--cluster`` names, reaching it, and what its live nodes advertise.

``ray``                 start or attach to a local cluster by ``ray.init()``'s rules
                        (``RAY_ADDRESS``, then a cluster started on this host, else a new one);
``ray://HOST:PORT``     the Ray client (needs ``ray[client]``);
``HOST:PORT``           ``ray.init(address="HOST:PORT")``: join as a driver on a cluster node.

An address is tried with a plain TCP connection first: an unreachable one is a
one-line error in seconds, where ``ray.init`` would retry for minutes.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

from mobexport.errors import MobexportError

RESOURCE_PREFIX = "mobexport/"
CONNECT_TIMEOUT_S = 5.0
CLUSTER_HINT = "start the head with 'ray start --head' and pass --cluster HOST:PORT (see docs/benchmarking.md)"


class ClusterError(MobexportError):
    """The Ray cluster cannot be reached or lacks what the sweep asks for."""


@dataclass(frozen=True)
class ClusterAddress:
    """A parsed ``--cluster`` value; ``address`` is what ``ray.init`` gets (None: its own rules)."""

    spec: str
    address: str | None
    host: str | None = None
    port: int | None = None

    @property
    def client(self) -> bool:
        return bool(self.address and self.address.startswith("ray://"))


def parse_cluster(spec: str) -> ClusterAddress:
    """``ray``, ``ray://HOST:PORT`` or ``HOST:PORT``; anything else is a one-line error."""
    text = spec.strip()
    if text in ("ray", "auto"):
        return ClusterAddress(spec, None)
    rest = text[len("ray://"):] if text.startswith("ray://") else text
    host, sep, port = rest.rpartition(":")
    if not sep or not host or "/" in host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"--cluster '{spec}' is not a cluster address",
                           "use ray, ray://HOST:PORT (Ray client) or HOST:PORT (the head's GCS address)")
    return ClusterAddress(spec, text, host.strip("[]"), int(port))


def check_reachable(where: ClusterAddress, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """A TCP connection to HOST:PORT, so that a wrong address fails in seconds."""
    if where.host is None:
        return
    try:
        with socket.create_connection((where.host, where.port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {where.host}:{where.port} "
                           f"({exc.strerror or exc})", CLUSTER_HINT) from None


def connect(spec: str, local_resources=None) -> ClusterAddress:
    """Parse, check and ``ray.init`` the cluster (a no-op when this process is already connected).

    ``ray`` attaches to the cluster ``ray.init()`` would find (``RAY_ADDRESS``, one started on this
    host); when there is none, it starts one here advertising ``local_resources()`` (this host's devices).
    """
    where = parse_cluster(spec)
    check_reachable(where)
    import ray

    if ray.is_initialized():
        return where
    settings = dict(log_to_driver=False, logging_level=logging.WARNING, configure_logging=False,
                    namespace="mobexport")
    try:
        if where.address is None and local_resources is not None:
            try:
                ray.init(address="auto", **settings)
                return where
            except ConnectionError:  # no running cluster to attach to: start one with this host's devices
                ray.init(resources=local_resources(), include_dashboard=False, **settings)
                return where
        ray.init(address=where.address, **settings)
    except ImportError as exc:  # the Ray client needs grpcio
        raise ClusterError(f"cannot use the Ray client for {spec} ({exc})",
                           "pip install 'mobexport[cluster]', or pass HOST:PORT from a cluster node") from None
    except (ConnectionError, RuntimeError, ValueError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"cannot join the Ray cluster at {spec}: {text}", CLUSTER_HINT) from None
    return where


def alive_resources() -> dict[str, dict[str, float]]:
    """Node id -> the resources it advertises, for the nodes alive now."""
    import ray

    return {node["NodeID"]: dict(node.get("Resources") or {}) for node in ray.nodes() if node.get("Alive")}


def advertised_devices(resources: dict[str, dict[str, float]] | None = None) -> dict[str, list[str]]:
    """Device name -> the live node ids advertising it."""
    found: dict[str, list[str]] = {}
    for node_id, owned in (alive_resources() if resources is None else resources).items():
        for name, amount in owned.items():
            if name.startswith(RESOURCE_PREFIX) and amount > 0:
                found.setdefault(name[len(RESOURCE_PREFIX):], []).append(node_id)
    return found


def require_devices(devices: list[str], where: ClusterAddress) -> dict[str, list[str]]:
    """Refuse a device no live node advertises, and a cluster with no CPU to export on."""
    resources = alive_resources()
    advertised = advertised_devices(resources)
    missing = [d for d in devices if d not in advertised]
    if missing:
        known = ", ".join(sorted(advertised)) or "none"
        raise ClusterError(f"no node of the cluster at {where.spec} advertises device "
                           f"{', '.join(repr(m) for m in missing)} (advertised: {known})",
                           "join its host with 'mobexport cluster node --address HEAD:PORT' "
                           "(see 'mobexport devices --cluster ADDRESS')")
    if not any(owned.get("CPU", 0) >= 1 for owned in resources.values()):
        raise ClusterError(f"the cluster at {where.spec} has no node with a CPU for exports",
                           "start a node with --num-cpus 1 or more")
    return advertised
