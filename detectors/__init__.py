"""Built-in detector plugins (motion, ONNX Runtime, TensorRT, pose)."""
