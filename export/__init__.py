"""ONNX / TensorRT export of salrt models.

The export pipeline is the subject of a later issue; the models are already written to be
traceable (``torch.onnx.export`` of the encoders and the denoiser is covered by tests).
"""
