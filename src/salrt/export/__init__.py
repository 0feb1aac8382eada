"""Export: ONNX graphs (``salrt.export.onnx``) and TensorRT engines (``salrt.export.tensorrt``)."""
