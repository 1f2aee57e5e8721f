"""The ExecuTorch runner turns a runtime failure into a one-line error, not a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from mobexport.devices.runtimes.executorch import ExecuTorchRunner
from mobexport.devices.input_shapes import AcceptedInputs
from mobexport.errors import DeviceError

pytest.importorskip("torch")


class FailingMethod:
    """Stands in for a loaded method whose delegate call fails, as XNNPACK reports it."""

    def execute(self, inputs):
        raise RuntimeError("method->execute() failed with error 0x1")


def test_a_failing_delegate_call_is_a_device_error_naming_the_program(tmp_path):
    runner = ExecuTorchRunner(tmp_path / "model.pte", accepted=AcceptedInputs.static(32))
    runner.method = FailingMethod()
    with pytest.raises(DeviceError) as caught:
        runner.infer(np.zeros((1, 3, 32, 32), np.float32))
    message = caught.value.one_line()
    assert "model.pte" in message and "error 0x1" in message and "\n" not in message
