"""Triton kernels for short-sequence video transformers, each with an eager PyTorch path beside it.

This package knows nothing of models: it exposes functional ops on tensors, one module per op
(`vivit_kernels.attention.attention`, `vivit_kernels.patch_embed.patch_embed`, `vivit_kernels.ln_mlp.ln_mlp` /
`ln_linear`). Every op takes `backend="eager" | "triton"`; "triton" runs the kernel (through the interpreter on the CPU
when TRITON_INTERPRET=1 was set before import) or raises NotImplementedError naming the op and the reason. Each op's
module also holds its plain-PyTorch reference (`*_reference`) and its ahead-of-time compile specs (`aot_specs()`).
The op functions are not re-exported here: they share their modules' names.
"""
