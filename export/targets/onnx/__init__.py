"""The onnx target package."""
