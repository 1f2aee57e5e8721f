"""The executorch target package."""
