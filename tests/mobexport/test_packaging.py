"""What the install instructions promise: the tensorrt extra installs TensorRT where NVIDIA
publishes it, and the CI workflow installs mobexport from a checkout, not from an index."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def extra(name: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["optional-dependencies"][name]]


@pytest.mark.parametrize("platform, machine, installs", [
    ("linux", "x86_64", True), ("win32", "AMD64", True), ("darwin", "arm64", False), ("linux", "aarch64", False),
])
def test_tensorrt_extra_installs_tensorrt_where_wheels_exist(platform, machine, installs):
    requirements = {r.name: r for r in extra("tensorrt")}
    assert {"onnx", "onnxruntime", "onnxscript", "tensorrt"} <= set(requirements)
    marker = requirements["tensorrt"].marker
    assert marker is not None
    env = {"sys_platform": platform, "platform_machine": machine}
    assert marker.evaluate(env) is installs
    assert all(requirements[n].marker is None for n in ("onnx", "onnxruntime", "onnxscript"))


def test_workflows_install_mobexport_from_a_checkout():
    for workflow in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        text = workflow.read_text()
        # an install of the published name ("mobexport[onnx]" from an index) would fail: it is not published
        assert not re.search(r"pip install [^\n]*[\"']mobexport\[", text), workflow.name
        assert re.search(r"pip install [^\n]*-e [\"']\.\[onnx\][\"']", text), workflow.name
