"""The tensorrt target package."""
