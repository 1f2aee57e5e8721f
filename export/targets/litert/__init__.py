"""The litert target package."""
