"""Triton kernels of salrt (fused compressed cross-attention, fused DDIM update).

Nothing is provided yet: the kernels are the subject of a later issue. The torch backend
uses plain PyTorch operators until then.
"""
