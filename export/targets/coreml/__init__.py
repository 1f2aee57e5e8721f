"""The coreml target package."""
