"""mobexport: export, rewrite, quantize and benchmark hybrid vision models for phones.

The Python API (``mobexport.export``, ``mobexport.bench``, ``mobexport.load``)
is imported on first use: ``import mobexport`` itself imports no torch.
"""

__version__ = "0.1.0"

__all__ = ["export", "bench", "load", "__version__"]

_API = {"export", "bench", "load"}


def __getattr__(name: str):
    if name in _API:
        from mobexport import api

        return getattr(api, name)
    raise AttributeError(f"module 'mobexport' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _API)
