"""TensorRT target: an engine built from our ONNX artifact with the TensorRT Python API.

The ONNX file is the one the ONNX target writes (:func:`.onnx_target.write_onnx`,
checked by ``onnx.checker``); TensorRT 10's ONNX parser reads it into an
explicit-batch network, the builder config enables fp16 kernels (default; or
fp32 with ``--precision fp32``) and, for a dynamic export, one optimization
profile spanning the model's resolution range (min, opt = the export
resolution, max). ``lower`` writes the ONNX; quantizers rewrite it (int8:
symmetric QDQ); ``finish`` builds the engine from what they left. Engines are static by default: a fixed shape gets tactics
tuned for exactly that shape and needs no profile.

An engine only builds (and runs) on an NVIDIA GPU, and belongs to the GPU
model and TensorRT version that built it, so it is usually built on the
deployment host anyway. ``--build-engine no`` writes the TensorRT-ready ONNX
plus the exact ``trtexec`` command line for that host into the manifest, and
measures the ONNX's parity here with ONNX Runtime. Without a GPU, asking for
an engine is refused up front with a pointer to that option.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shlex
from pathlib import Path

from mobexport.config import ExportConfig
from mobexport.devices.runtimes import ONNX, TENSORRT
from mobexport.devices.runtimes.tensorrt import nvidia_gpu
from mobexport.errors import DeviceError, ExportError, MissingDependencyError, TargetOptionError

from ..onnx.target import INPUT_NAME, describe_onnx, write_onnx
from ..base import Lowered, Target
from .options import TensorRTOptions
from .quantizers import QUANTIZERS
from ...trace import TracedProgram

ENGINE_NAME = "model.engine"
ONNX_NAME = "model.onnx"
WORKSPACE_BYTES = 4 << 30


class TensorRTTarget(Target):
    name = "tensorrt"
    extra = "tensorrt"
    file_name = ENGINE_NAME
    # The engine itself needs `tensorrt` (checked in check_config, only when an engine is built).
    requires = (("onnx", "onnx"), ("onnxruntime", "onnxruntime"), ("onnxscript", "onnxscript"))
    default_dynamic = False

    options_class = TensorRTOptions
    quantizers = QUANTIZERS

    def check_config(self, config: ExportConfig) -> None:
        if config.target_options.get("precision") not in (None, "fp16", "fp32"):
            raise TargetOptionError(f"unknown precision '{config.target_options['precision']}'", "use fp16 or fp32")
        if not builds_engine(config):
            return
        present, why = nvidia_gpu()
        if not present:
            raise DeviceError(
                f"TensorRT needs an NVIDIA GPU to build an engine, and this host has none ({why})",
                "pass --build-engine no to write the TensorRT-ready ONNX and the trtexec command "
                "that builds the engine on the GPU host",
            )
        if importlib.util.find_spec("tensorrt") is None:
            error = MissingDependencyError("tensorrt", self.extra, "--target tensorrt")
            error.hint = "install NVIDIA's wheels on this GPU host: pip install tensorrt (or pass --build-engine no)"
            raise error

    def status_here(self) -> tuple[str, str]:
        """Building an engine needs TensorRT and an NVIDIA GPU; the extra alone gives only --build-engine no."""
        gap = self.missing()
        if gap is not None:
            return "missing", f'not installed: pip install "mobexport[{self.extra}]" (needs {gap[1]})'
        present, why = nvidia_gpu()
        if importlib.util.find_spec("tensorrt") is None or not present:
            lacking = "no tensorrt package" if importlib.util.find_spec("tensorrt") is None else f"no NVIDIA GPU ({why})"
            return "partial", (f"onnx-only: --build-engine no works ({lacking}); install tensorrt on an NVIDIA host "
                               "to build engines")
        return "ready", "builds and runs engines here"

    def engine_precision(self, config: ExportConfig) -> str:
        if config.quantize == "int8":
            return "int8"
        return self.options(config).precision or "fp16"

    def precision_for(self, config: ExportConfig) -> str:
        # Without an engine, parity is that of the fp32 ONNX file under ONNX Runtime.
        return self.engine_precision(config) if builds_engine(config) else "fp32"

    def lower(self, traced: TracedProgram, config: ExportConfig, out_dir: Path) -> Lowered:
        """The TensorRT-ready ONNX and the engine's build facts; ``finish`` builds the engine from it."""
        onnx_path = write_onnx(traced, Path(out_dir) / ONNX_NAME)
        precision = self.engine_precision(config)
        shapes = profile_shapes(traced)
        onnx_facts = describe_onnx(onnx_path)
        details = {
            "engine_precision": precision,
            "profile": shapes,
            "trtexec": trtexec_command(ONNX_NAME, ENGINE_NAME, precision, shapes),
            "onnx_opset": onnx_facts["opset"],
            "onnx_nodes": onnx_facts["nodes"],
            "op_histogram": onnx_facts["op_histogram"],
        }
        return Lowered(path=onnx_path, kind=ONNX, details=details)

    def finish(self, lowered: Lowered, config: ExportConfig, out_dir: Path) -> Lowered:
        """Build the engine from the (possibly quantized) ONNX, or say how to build it on the GPU host."""
        details = dict(lowered.details)
        if not builds_engine(config):
            details["engine_built"] = False
            return dataclasses.replace(lowered, details=details, notes=[*lowered.notes, (
                "engine not built here (--build-engine no): run the manifest's trtexec command on the GPU host; "
                "parity is the ONNX file's under ONNX Runtime")])
        engine_path = Path(out_dir) / ENGINE_NAME
        details.update(build_engine(lowered.path, engine_path, details["engine_precision"], details["profile"]))
        details["engine_built"] = True
        return dataclasses.replace(lowered, path=engine_path, kind=TENSORRT, details=details,
                                   runnable=engine_runs_here)


def engine_runs_here() -> tuple[bool, str]:
    present, why = nvidia_gpu()
    return (True, "") if present else (False, f"TensorRT engines run on an NVIDIA GPU ({why})")


def builds_engine(config: ExportConfig) -> bool:
    return bool(TensorRTOptions.from_dict(config.target_options).build_engine)


def profile_shapes(traced: TracedProgram) -> dict:
    """Input shapes for the builder: one fixed shape, or min/opt/max of a dynamic range."""
    def shape(size: int) -> list[int]:
        return [1, 3, size, size]

    if not traced.dynamic:
        return {"input": INPUT_NAME, "dynamic": False, "shape": list(traced.input_shape)}
    return {"input": INPUT_NAME, "dynamic": True, "min": shape(traced.min_resolution),
            "opt": list(traced.input_shape), "max": shape(traced.max_resolution)}


def trtexec_command(onnx_name: str, engine_name: str, precision: str, shapes: dict) -> str:
    """The ``trtexec`` line that builds the same engine on the deployment host."""
    def dims(shape: list[int]) -> str:
        return f"{shapes['input']}:{'x'.join(str(d) for d in shape)}"

    args = ["trtexec", f"--onnx={onnx_name}", f"--saveEngine={engine_name}"]
    if precision == "int8":
        args += ["--int8", "--fp16"]  # Q/DQ layers in int8, float-kept layers in fp16
    elif precision == "fp16":
        args.append("--fp16")
    if shapes["dynamic"]:
        args += [f"--minShapes={dims(shapes['min'])}", f"--optShapes={dims(shapes['opt'])}",
                 f"--maxShapes={dims(shapes['max'])}"]
    # A static ONNX input fixes its own shape: trtexec takes no shape flags for it.
    args.append(f"--memPoolSize=workspace:{WORKSPACE_BYTES >> 20}")  # MiB, trtexec's default unit
    return shlex.join(args)


def build_engine(onnx_path: Path, engine_path: Path, precision: str, shapes: dict) -> dict:
    """Parse ``onnx_path`` and build a serialized engine into ``engine_path``; facts for the manifest."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse the ONNX file: {errors[:300]}",
                          "export with --build-engine no and check the ONNX file with trtexec --verbose")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    if shapes["dynamic"]:
        profile = builder.create_optimization_profile()
        profile.set_shape(shapes["input"], tuple(shapes["min"]), tuple(shapes["opt"]), tuple(shapes["max"]))
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT could not build an engine from the ONNX file",
                          "run with --debug for TensorRT's log, or try --precision fp32")
    engine_path.write_bytes(memoryview(serialized))
    return {
        "gpu": nvidia_gpu()[1],
        "tensorrt_version": trt.__version__,
        "network_layers": network.num_layers,
        "engine_bytes": engine_path.stat().st_size,
    }

