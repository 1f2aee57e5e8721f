"""mobexport: export, rewrite, quantize and benchmark hybrid vision models for phones."""

__version__ = "0.1.0"
