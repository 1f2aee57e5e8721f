"""What ``--model`` (or ``mobexport.export(model, ...)``) names: one type for every way to give a model.

A :class:`ModelReference` is resolved from

* a zoo name (``mobile_former_294m``);
* ``package.module:factory`` or ``path/to/file.py:factory``: a callable returning an ``nn.Module``,
  called with ``model_kwargs`` (``--model-kwargs '{"num_classes": 10}'``);
* a ``.pt2`` file written by ``torch.export.save``;
* from Python, an ``nn.Module`` instance or a ``torch.export.ExportedProgram``.

It records where the model came from for the manifest (zoo name, import path,
or the file's sha256) and builds the module. Every way it can go wrong is a
one-line :class:`ModelReferenceError` (exit status 2) before anything is written.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobexport.errors import MobexportError, ResolutionError, first_line
from mobexport.shapes import IMAGENET_MEAN, IMAGENET_STD, Resolution, SizeRange

from .spec import ModelSpec, ResolutionRange

ZOO, IMPORT, FILE, PROGRAM, MODULE = "zoo", "import", "file", "program", "module"


class ModelReferenceError(MobexportError):
    """``--model`` names something that is not a model mobexport can build."""


class InputShapeError(MobexportError):
    """A user model's input shape is missing, malformed, or refused by the model."""


class UntraceableModelError(MobexportError):
    """``torch.export`` cannot trace a user's model (the first failing line is named)."""


@dataclass
class ModelReference:
    """A resolved model reference: what it is, what to call it, and how to build it."""

    kind: str
    label: str  # a name fit for a directory: OUT/LABEL/TARGET
    source: dict  # the manifest's record of where the model came from
    spec: ModelSpec | None = None  # zoo models only
    factory: Any = None  # IMPORT / FILE: the callable
    kwargs: dict = field(default_factory=dict)
    instance: Any = None  # MODULE: the nn.Module; PROGRAM: the ExportedProgram

    @property
    def is_zoo(self) -> bool:
        return self.kind == ZOO

    def build(self, num_classes: int | None = None, resolution: Resolution | None = None):
        """The model in eval mode: an ``nn.Module`` (a program's module for ``.pt2`` references)."""
        import torch.nn as nn

        if self.kind == ZOO:
            from .registry import create_model

            size = resolution.height if resolution is not None else None
            return create_model(self.spec.name, num_classes=num_classes, resolution=size).eval()
        if num_classes is not None:
            raise ModelReferenceError(f"--num-classes applies to zoo models, not to {self.describe()}",
                                      "give the class count to your factory, e.g. --model-kwargs '{\"num_classes\": 10}'")
        if self.kind in (IMPORT, FILE):
            try:
                model = self.factory(**self.kwargs)
            except MobexportError:
                raise
            except Exception as exc:
                raise ModelReferenceError(f"{self.describe()} raised {type(exc).__name__}: {first_line(exc)}",
                                          "fix the factory or its --model-kwargs") from exc
            if not isinstance(model, nn.Module):
                raise ModelReferenceError(f"{self.describe()} returned {type(model).__name__}, not a torch.nn.Module",
                                          "the factory must return the model (an nn.Module instance)")
            return model.eval()
        if self.kind == MODULE:
            return self.instance.eval()
        return self.instance.module()  # PROGRAM: already in the mode it was exported in


    def example_shape(self) -> tuple[int, ...] | None:
        """The input shape a ``.pt2`` program was exported with (None for the other kinds)."""
        if self.kind != PROGRAM:
            return None
        for node in self.instance.graph.nodes:
            if node.op == "placeholder" and node.name in self.instance.graph_signature.user_inputs:
                value = node.meta.get("val")
                if value is not None and hasattr(value, "shape"):
                    return tuple(int(d) if str(d).isdigit() else int(getattr(d, "node").hint or 0)
                                 for d in value.shape)
        return None

    def describe(self) -> str:
        if self.kind == ZOO:
            return f"zoo model {self.label}"
        if self.kind in (IMPORT, FILE):
            return f"'{self.source['reference']}'"
        if self.kind == PROGRAM:
            return f"program '{self.source['path']}'"
        return f"{self.source['class']} instance"


def eval_mode(model):
    """``model.eval()``, except for a program's module, which refuses it (and was exported in its mode)."""
    try:
        return model.eval()
    except NotImplementedError:
        return model


def resolve(model: Any, model_kwargs: dict | None = None, name: str | None = None) -> ModelReference:
    """A :class:`ModelReference` from whatever the user gave; one-line errors for what is not a model."""
    if isinstance(model, ModelReference):
        return model
    kwargs = dict(model_kwargs or {})
    if isinstance(model, Path):
        model = str(model)
    if isinstance(model, str):
        if model.endswith(".pt2"):
            ref = _program_file(model)
        elif ":" in model:
            ref = _factory(model, kwargs)
        else:
            ref = _zoo(model)
        if kwargs and ref.kind not in (IMPORT, FILE):
            raise ModelReferenceError(f"--model-kwargs applies to a factory, not to {ref.describe()}",
                                      "drop --model-kwargs, or name a factory as package.module:factory")
    else:
        ref = _instance(model)
    if name:
        ref.label = safe_label(name)
    return ref


def _zoo(name: str) -> ModelReference:
    from .registry import get_spec

    if "/" in name or name.endswith(".py"):
        raise ModelReferenceError(f"--model '{name}' names a file without a factory",
                                  f"add the function that builds the model: --model {name}:FACTORY")
    spec = get_spec(name)  # UnknownModelError with "did you mean" for a typo
    return ModelReference(ZOO, name, {"kind": ZOO, "name": name}, spec=spec)


def _factory(reference: str, kwargs: dict) -> ModelReference:
    where, _, attribute = reference.rpartition(":")
    if not where or not attribute.isidentifier():
        raise ModelReferenceError(f"--model '{reference}' is not MODULE:FACTORY or FILE.py:FACTORY",
                                  "e.g. --model mypackage.models:build or --model models/net.py:build")
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser()
        if not path.is_file():
            raise ModelReferenceError(f"--model file '{where}' does not exist", "check the path before ':'")
        module = _import_file(path, reference)
        source = {"kind": FILE, "reference": reference, "path": str(path), "factory": attribute,
                  "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        kind = FILE
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise ModelReferenceError(f"cannot import '{where}' for --model {reference}: {first_line(exc)}",
                                      "is the package installed, or on PYTHONPATH?") from exc
        except Exception as exc:
            raise ModelReferenceError(f"importing '{where}' raised {type(exc).__name__}: {first_line(exc)}",
                                      "fix the module, then run again") from exc
        source = {"kind": IMPORT, "reference": reference}
        kind = IMPORT
    factory = getattr(module, attribute, None)
    if factory is None:
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))[:8]
        raise ModelReferenceError(f"'{where}' has no '{attribute}'",
                                  f"it defines {', '.join(public)}" if public else "name a function defined there")
    if not callable(factory):
        raise ModelReferenceError(f"'{reference}' is a {type(factory).__name__}, not a callable",
                                  "name a function or class that returns the model")
    if kwargs:
        source["kwargs"] = kwargs
    return ModelReference(kind, safe_label(attribute), source, factory=factory, kwargs=kwargs)


def _import_file(path: Path, reference: str):
    """Import ``path`` as a module of its own (its directory is importable meanwhile, for its own imports)."""
    name = f"mobexport_user_model_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelReferenceError(f"cannot import '{path}' for --model {reference}", "give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        where = user_frame(exc, str(path.resolve()))
        raise ModelReferenceError(f"importing '{path}' raised {type(exc).__name__}: {first_line(exc)}"
                                  + (f" at {where}" if where else ""), "fix the file, then run again") from exc
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def _program_file(path_text: str) -> ModelReference:
    import torch

    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ModelReferenceError(f"--model program '{path_text}' does not exist", "check the path")
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise ModelReferenceError(f"'{path_text}' is not a program written by torch.export.save ({first_line(exc)})",
                                  "save one with torch.export.save(torch.export.export(model, (x,)), 'prog.pt2')"
                                  ) from exc
    if not isinstance(program, torch.export.ExportedProgram):
        raise ModelReferenceError(f"'{path_text}' holds a {type(program).__name__}, not an ExportedProgram",
                                  "save one with torch.export.save")
    source = {"kind": PROGRAM, "path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return ModelReference(PROGRAM, safe_label(path.stem), source, instance=program)


def _instance(model: Any) -> ModelReference:
    import torch
    import torch.nn as nn

    if isinstance(model, torch.export.ExportedProgram):
        return ModelReference(PROGRAM, "exported_program", {"kind": PROGRAM, "path": None, "sha256": None},
                              instance=model)
    if isinstance(model, nn.Module):
        cls = type(model)
        return ModelReference(MODULE, safe_label(snake_case(cls.__name__)),
                              {"kind": MODULE, "class": f"{cls.__module__}.{cls.__qualname__}"}, instance=model)
    raise ModelReferenceError(f"model must be a zoo name, a reference string, an nn.Module or an ExportedProgram, "
                              f"not {type(model).__name__}", "e.g. mobexport.export(MyNet(), 'onnx', resolution=224)")


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def safe_label(name: str) -> str:
    """``name`` as one directory name: letters, digits, ``_ . -``; never empty or a dot name."""
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"
    return label[:100]


# ------------------------------------------------------------------------------ inputs of a user model


@dataclass(frozen=True)
class UserInput:
    """What a user model takes, stated by the user: one image batch shape, optionally dynamic H/W."""

    shape: tuple[int, int, int, int]
    size_range: SizeRange | None = None

    @property
    def resolution(self) -> Resolution:
        return Resolution(self.shape[2], self.shape[3])


def user_spec(ref: ModelReference, resolution: Resolution, size_range: SizeRange | None,
              mean=IMAGENET_MEAN, std=IMAGENET_STD, num_classes: int | None = None) -> ModelSpec:
    """A :class:`ModelSpec` for a model outside the zoo: the sizes the user said it takes, no reference numbers."""
    if size_range is not None:
        for size in (resolution.height, resolution.width):
            if size not in size_range:
                raise InputShapeError(f"input size {resolution} is outside --resolution-range {size_range}",
                                      f"give a size in it, e.g. --resolution {nearest(size_range, size)}")
        sizes = ResolutionRange(size_range.min, size_range.max, size_range.stride)
    else:
        low, high = min(resolution.height, resolution.width), max(resolution.height, resolution.width)
        sizes = ResolutionRange(low, high, 1)
    return ModelSpec(name=ref.label, family="user", default_resolution=resolution.height, reference_params=None,
                     reference_macs=None, checkpoint_format=None, resolutions=sizes,
                     num_classes=num_classes or 0, mean=tuple(mean), std=tuple(std),
                     description=ref.describe())


def nearest(sizes: "SizeRange | ResolutionRange", size: int) -> int:
    values = range(sizes.min, sizes.max + 1, sizes.stride)
    start = values[0] if values else sizes.min
    return min((v for v in values if v % sizes.stride == 0), key=lambda v: abs(v - size), default=start)


def check_zoo_resolution(spec: ModelSpec, resolution: Resolution) -> Resolution:
    """``resolution`` if the zoo model takes it (each side in its range), else the nearest valid size in the hint."""
    if resolution.square:
        spec.check_resolution(resolution.height)
        return resolution
    bad = [s for s in (resolution.height, resolution.width) if s not in spec.resolutions]
    if bad:
        near = f"{nearest(spec.resolutions, resolution.height)}x{nearest(spec.resolutions, resolution.width)}"
        raise ResolutionError(f"resolution {resolution} does not fit {spec.name}: each side must be in "
                              f"{spec.resolutions}", f"use e.g. --resolution {near}")
    return resolution


def user_frame(exc: BaseException, prefer_file: str | None = None) -> str | None:
    """``file.py:LINE (code)`` of the deepest frame outside torch and mobexport: where the user's code failed."""
    frames = []
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        frames.extend(traceback.extract_tb(exc.__traceback__))
        exc = exc.__cause__ or exc.__context__
    torch_dir = _package_dir("torch")
    ours = str(Path(__file__).resolve().parents[1])
    candidates = [f for f in frames if not f.filename.startswith((torch_dir, ours, "<")) and "site-packages" not in f.filename
                  or (prefer_file and f.filename == prefer_file)]
    if not candidates:
        return None
    frame = candidates[-1]
    code = f" ({frame.line.strip()})" if frame.line else ""
    return f"{Path(frame.filename).name}:{frame.lineno}{code}"


def _package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    return str(Path(spec.origin).parent) if spec and spec.origin else "\x00"


def traced_failure(exc: BaseException) -> str:
    """The first failing line of user code in a ``torch.export`` error, from its text or its traceback."""
    text = str(exc)
    located = re.findall(r'File "([^"]+)", line (\d+), in (\w+)\n\s*(.*)', text)
    user = [m for m in located if "site-packages" not in m[0] and "/torch/" not in m[0]]
    if user:
        filename, line, _, code = user[0]
        return f"{Path(filename).name}:{line} ({code.strip()})"
    return user_frame(exc) or ""
