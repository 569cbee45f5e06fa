"""Ahead-of-time compilation of our Triton kernels for real GPUs, on a machine without one.

Each kernel module lists what it launches as `KernelSpec`s (`aot_specs()`); `compile_spec` runs Triton's real
compiler down to PTX and cubin for a target architecture and reads back what matters for speed: registers per
thread and spills (from `ptxas -v`), shared memory, and whether tensor-core instructions were emitted.

Interpreted kernels (TRITON_INTERPRET=1) have no compile path: call this from a process without that variable.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field

# Per-SM limits used for the occupancy estimate.
MAX_REGISTERS_PER_SM = 65536
MAX_THREADS_PER_SM = 2048
MAX_PROGRAMS_PER_SM = 32
SHARED_BYTES_PER_SM = {80: 164 * 1024, 86: 100 * 1024, 90: 228 * 1024}
MAX_SHARED_PER_PROGRAM = {80: 163 * 1024, 86: 99 * 1024, 90: 227 * 1024}
MAX_THREADS = {80: 2048, 86: 1536, 90: 2048}


@dataclass
class KernelSpec:
    """One kernel at one kept configuration, described as the runtime would launch it.

    signature: argument name -> Triton type ("*bf16", "*fp32", "i32", "i64", "fp32", "constexpr", ...).
    constexprs: values of the constexpr arguments.
    divisible: argument names the runtime would mark 16-divisible (aligned pointers, strides that are multiples of 16).
    """

    name: str
    config: str
    fn: object
    signature: dict
    constexprs: dict
    num_warps: int = 4
    num_stages: int = 2
    divisible: tuple = ()
    uses_dot: bool = True  # False for row kernels (statistics, reductions): no tensor-core instruction is expected
    extra: dict = field(default_factory=dict)
    # auto_rule(arch, shared_limit) -> None when backend="auto" takes this configuration on that target, else why
    # not (the op module's auto_config_reason, the rule vivit.models.dispatch applies); None: auto never takes it.
    auto_rule: object = None
    shared_estimate: int | None = None  # the op's shared-memory bound the auto rule uses (checked >= the compile)

    def compile_key(self, arch: int) -> str:
        """Identical keys compile to the same binary: the report compiles each key once."""
        fn = getattr(self.fn, "fn", self.fn)
        parts = (fn.__module__, fn.__qualname__, self.signature, self.constexprs, self.num_warps, self.num_stages,
                 sorted(self.divisible), arch)  # fmt: skip
        return repr(parts)


def _jit_function(fn):
    """The compilable JITFunction behind `fn`, even when it was decorated under the interpreter."""
    import triton
    from triton.runtime.jit import JITFunction

    if isinstance(fn, JITFunction):
        return fn
    raw = getattr(fn, "fn", fn)
    return triton.jit(raw) if not isinstance(raw, JITFunction) else raw


def _ptxas_usage(ptx: str, arch: int) -> tuple[int, int]:
    from triton.backends.nvidia.compiler import get_ptxas

    ptxas = get_ptxas(arch).path
    gpu = f"sm_{arch}a" if arch == 90 else f"sm_{arch}"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        cmd = [ptxas, "-v", f"--gpu-name={gpu}", src, "-o", os.path.join(tmp, "kernel.o")]
        if arch >= 90:
            cmd.insert(1, "--regAllocOptLevel=2")
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas failed for sm_{arch}: {proc.stderr[-2000:]}")
    regs = re.search(r"Used (\d+) registers", proc.stderr)
    spills = re.findall(r"(\d+) bytes spill (?:stores|loads)", proc.stderr)
    return (int(regs.group(1)) if regs else 0), sum(int(s) for s in spills)


def _cubin_usage(cubin: bytes) -> tuple[int, int] | None:
    """(registers, stack + local bytes per thread) of the cubin Triton built, read by the bundled cuobjdump.

    Register spills go to the per-thread stack frame in local memory, so a non-zero frame means spills (or a local
    array, as costly); Triton kernels otherwise have none. Reading the cubin gives the numbers of the binary that
    would run, without a second ptxas pass.
    """
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if not os.path.exists(tool):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        proc = subprocess.run([tool, "--dump-resource-usage", path], capture_output=True, text=True, check=False)
    match = re.search(r"REG:(\d+) STACK:(\d+) SHARED:\d+ LOCAL:(\d+)", proc.stdout)
    if proc.returncode != 0 or not match:
        return None
    return int(match.group(1)), int(match.group(2)) + int(match.group(3))


def compile_spec(spec: KernelSpec, arch: int) -> dict:
    """Compile `spec` for sm_`arch` and return one report row."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    names = list(spec.signature)
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in spec.divisible}
    src = ASTSource(fn=_jit_function(spec.fn), signature=spec.signature, constexprs=spec.constexprs, attrs=attrs)
    compiled = triton.compile(
        src,
        target=GPUTarget("cuda", arch, 32),
        options={"num_warps": spec.num_warps, "num_stages": spec.num_stages},
    )
    ptx = compiled.asm["ptx"]
    # spill_bytes: the stack frame of the cubin (where spills go), or ptxas' spill traffic when cuobjdump is absent.
    usage = _cubin_usage(compiled.asm["cubin"]) if "cubin" in compiled.asm else None
    registers, spill_bytes = usage if usage is not None else _ptxas_usage(ptx, arch)
    shared = int(compiled.metadata.shared)
    threads = 32 * spec.num_warps
    by_regs = MAX_REGISTERS_PER_SM // max(1, registers * threads)
    by_threads = MAX_THREADS.get(arch, MAX_THREADS_PER_SM) // threads
    by_shared = SHARED_BYTES_PER_SM[arch] // shared if shared else MAX_PROGRAMS_PER_SM
    return {
        "kernel": spec.name,
        "config": spec.config,
        "target": f"sm_{arch}",
        "registers": registers,
        "spill_bytes": spill_bytes,
        "shared_bytes": shared,
        "shared_limit": MAX_SHARED_PER_PROGRAM[arch],
        "tensor_cores": "mma.sync" in ptx or "wgmma" in ptx,
        "wgmma": "wgmma" in ptx,
        "programs_per_sm": min(by_regs, by_threads, by_shared, MAX_PROGRAMS_PER_SM),
        "uses_dot": spec.uses_dot,
        "num_warps": spec.num_warps,
        "num_stages": spec.num_stages,
    }
