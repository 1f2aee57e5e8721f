"""The model zoo: families, registry and checkpoint loading."""

from .checkpoint import LoadReport, load_checkpoint, read_state_dict
from .registry import create_model, get_spec, list_models, register_model, smallest_per_family
from .spec import ModelSpec, ResolutionRange

__all__ = [
    "LoadReport",
    "ModelSpec",
    "ResolutionRange",
    "create_model",
    "get_spec",
    "list_models",
    "load_checkpoint",
    "read_state_dict",
    "register_model",
    "smallest_per_family",
]
