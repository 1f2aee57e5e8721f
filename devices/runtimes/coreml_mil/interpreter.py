"""Execute a Core ML ML program (MIL) op by op, on this host, with fp16 storage emulated.

The program comes from the saved ``.mlpackage`` through coremltools' own
reader (the milproto frontend into a PyMIL program, weights resolved from the
package's ``weight.bin``), so what runs here is what was written, not the
converter's in-memory graph. Each op runs with the semantics of ``ops.py``
in float32; every output the program types as fp16 is then rounded to
float16 (values past 65504 become inf, as they would in an fp16 buffer).
This emulates the program's storage precision, not the device's
accumulation order: a phone's fp16 kernels may also accumulate in fp16.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mobexport.errors import ExportError, first_line

from .ops import OPS, Args

NAME = "coreml-reference-interpreter"
EMULATION = ("emulates the program's storage precision (each fp16-typed op output and fp16 weight rounded to "
             "float16), not the device's accumulation order")
# Ops that only hold data: evaluated once, when the program loads.
CONST_OPS = {"const"}


class UnsupportedProgramError(ExportError):
    """The program uses ops (or control flow) the interpreter does not implement: its output cannot be verified."""

    def __init__(self, ops: list[str]):
        super().__init__(f"cannot verify: op {', '.join(ops)} not interpreted",
                         "the reference interpreter covers the ops listed in docs/targets.md")
        self.ops = ops


def _dtype_name(var) -> str:
    from coremltools.converters.mil.mil import types

    try:  # a list (e.g. a classifier's class labels) has no element dtype
        return types.builtin_to_string(var.dtype) or ""
    except Exception:
        return ""


def _to_torch(value, dtype: str):
    """A const's value as a float32/int/bool tensor (fp16 values are exact in float32), a str as itself."""
    if isinstance(value, (str, bytes)):
        return value
    array = np.asarray(value)
    if array.dtype.kind in "US" or array.dtype == object:
        return array.tolist()
    if array.dtype.kind == "f":
        return torch.from_numpy(np.array(array, dtype=np.float32))
    if array.dtype == np.bool_:
        return torch.from_numpy(np.array(array))
    return torch.from_numpy(np.array(array, dtype=np.int64 if array.dtype.itemsize > 4 else np.int32))


_INT_TYPES = {"int8": torch.int8, "uint8": torch.uint8, "int16": torch.int16, "int32": torch.int32,
              "int64": torch.int64, "uint16": torch.int32, "uint32": torch.int64}


def store(value, dtype: str):
    """``value`` as the program's ``dtype`` holds it: fp16 rounded through float16, ints and bools cast."""
    if not isinstance(value, torch.Tensor):
        return value
    if dtype == "fp16":
        return value.to(torch.float32).to(torch.float16).to(torch.float32)
    if dtype in ("fp32", "fp64"):
        return value.to(torch.float32)
    if dtype in _INT_TYPES:
        return value.to(_INT_TYPES[dtype])
    if dtype == "bool":
        return value.to(torch.bool)
    return value


@dataclass
class LoadedProgram:
    """A saved package's ``main`` function as PyMIL, and its spec version."""

    function: object
    spec_version: int
    path: Path


def load_program(path: Path) -> LoadedProgram:
    """Read ``path`` (an ``.mlpackage``) with coremltools' milproto reader, without compiling it."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load as load_milproto

    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            model = ct.models.MLModel(str(path), skip_model_load=True)
            spec = model.get_spec()
            if spec.WhichOneof("Type") != "mlProgram":
                raise ExportError(f"'{Path(path).name}' is a {spec.WhichOneof('Type')}, not an ML program",
                                  "the reference interpreter reads ML programs (convert_to='mlprogram')")
            program = load_milproto(spec, spec.specificationVersion, file_weights_dir=model.weights_dir or "")
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"coremltools could not read the MIL program of '{Path(path).name}' "
                          f"({first_line(exc, 200)})", "re-export the package") from exc
    finally:
        logger.setLevel(level)
    return LoadedProgram(function=program.functions["main"], spec_version=int(spec.specificationVersion),
                         path=Path(path))


class MILInterpreter:
    """Runs one MIL function; ``run`` returns its outputs and, when asked, every op's output."""

    def __init__(self, loaded: LoadedProgram):
        function = loaded.function
        self.spec_version = loaded.spec_version
        self.input_names = list(function.inputs)
        self.input_types = {name: _dtype_name(var) for name, var in function.inputs.items()}
        self.output_names = [var.name for var in function.outputs]
        self.operations = list(function.operations)
        self.unsupported = sorted({op.op_type for op in self.operations
                                   if op.blocks or not (op.op_type in OPS or op.op_type in CONST_OPS
                                                        or op.op_type.startswith("constexpr_"))})
        self.fp16 = any(_dtype_name(var) == "fp16" for op in self.operations for var in op.outputs)
        self.op_types = sorted({op.op_type for op in self.operations})
        self._constants: dict = {}
        self._unmaterialized: set[str] = set()  # constexpr ops coremltools could not decompress
        if not self.unsupported:
            self._load_constants()
            self.unsupported = sorted(self._unmaterialized)
        self._last_use = self._last_uses()

    def _load_constants(self) -> None:
        for op in self.operations:
            if op.op_type in CONST_OPS:
                var = op.outputs[0]
                self._constants[var.name] = _to_torch(var.val, _dtype_name(var))
            elif op.op_type.startswith("constexpr_"):
                # Weight decompression (affine dequantize, palettization, sparsity, casts): coremltools'
                # own materialization of the op, which follows the op's documented formula.
                try:
                    values = op.materialized_val_inference()
                except Exception:
                    self._unmaterialized.add(op.op_type)
                    continue
                values = values if isinstance(values, tuple) else (values,)
                for var, value in zip(op.outputs, values):
                    self._constants[var.name] = store(_to_torch(value, _dtype_name(var)), _dtype_name(var))

    def _last_uses(self) -> dict[str, int]:
        last: dict[str, int] = {}
        for index, op in enumerate(self.operations):
            for value in op.inputs.values():
                for var in (value if isinstance(value, (list, tuple)) else (value,)):
                    last[var.name] = index
        return last

    def check_supported(self) -> None:
        if self.unsupported:
            raise UnsupportedProgramError(self.unsupported)

    def run(self, feeds: dict[str, np.ndarray], keep: bool = False) -> tuple[dict, dict]:
        """(outputs by name, every op output by name when ``keep``) for one set of input arrays."""
        self.check_supported()
        env = dict(self._constants)
        for name in self.input_names:
            if name not in feeds:
                raise ExportError(f"the MIL program needs an input named '{name}'", f"feed {self.input_names}")
            env[name] = store(torch.from_numpy(np.array(feeds[name], dtype=np.float32)),
                              self.input_types[name])
        kept: dict = {}
        keep_names = set(self.output_names)
        with torch.no_grad():
            for index, op in enumerate(self.operations):
                if op.op_type in CONST_OPS or op.op_type.startswith("constexpr_"):
                    continue
                values = {}
                for key, value in op.inputs.items():
                    values[key] = [env[v.name] for v in value] if isinstance(value, (list, tuple)) else env[value.name]
                try:
                    result = OPS[op.op_type](Args(op.op_type, values, self.spec_version))
                except Exception as exc:
                    raise ExportError(f"the reference interpreter failed on MIL op '{op.name}' ({op.op_type}): "
                                      f"{first_line(exc, 200)}", "run with --debug and report it") from exc
                results = result if isinstance(result, tuple) else (result,)
                for var, value in zip(op.outputs, results):
                    value = store(value, _dtype_name(var))
                    env[var.name] = value
                    if keep:
                        kept[var.name] = value
                if not keep:
                    for value in op.inputs.values():
                        for var in (value if isinstance(value, (list, tuple)) else (value,)):
                            if self._last_use.get(var.name) == index and var.name not in keep_names \
                                    and var.name not in self._constants:
                                env.pop(var.name, None)
        outputs = {name: _to_numpy(env[name]) for name in self.output_names}
        return outputs, {name: _to_numpy(value) for name, value in kept.items()}

    def output_vars(self) -> dict:
        """Each op output's (op, var) by var name, in program order."""
        return {var.name: (op, var) for op in self.operations for var in op.outputs}


def _to_numpy(value):
    return value.numpy() if isinstance(value, torch.Tensor) else value
