"""Triton kernels for short-sequence video transformers, each with an eager PyTorch path beside it.

This package knows nothing of models: it exposes functional ops on tensors.
"""
