"""Triton kernels for short-sequence video transformers, each with an eager PyTorch path beside it.

This package knows nothing of models: it exposes functional ops on tensors. Every op takes
`backend="eager" | "triton"`; "triton" runs the kernel (through the interpreter on the CPU when TRITON_INTERPRET=1
was set before import) or raises NotImplementedError naming the op and the reason. Each op's module also holds its
plain-PyTorch reference (`*_reference`) and the ahead-of-time compile specs (`aot_specs()`).
"""

from kernels.attention import attention, attention_reference
from kernels.ln_mlp import ln_linear, ln_linear_reference, ln_mlp, ln_mlp_reference
from kernels.patch_embed import patch_embed, patch_embed_reference

__all__ = [
    "attention",
    "attention_reference",
    "ln_linear",
    "ln_linear_reference",
    "ln_mlp",
    "ln_mlp_reference",
    "patch_embed",
    "patch_embed_reference",
]
