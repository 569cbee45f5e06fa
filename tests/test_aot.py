"""Every kept Triton kernel configuration compiles for A100 (sm_80) and H100 (sm_90) cleanly, checked without a GPU.

`python -m vivit_kernels.report --json` compiles each kernel module's `aot_specs()` with Triton's real compiler and
ptxas in a subprocess without TRITON_INTERPRET (interpreted kernels have no compile path). A configuration that spills,
uses more than 255 registers, exceeds shared memory or emits no tensor-core instruction fails here: prune it, do not
skip it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vivit_kernels import report

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"sm_80", "sm_90"}
REQUIRED_KEYS = {
    "kernel",
    "config",
    "target",
    "registers",
    "spill_bytes",
    "shared_bytes",
    "tensor_cores",
    "programs_per_sm",
}
# Shared memory per thread block that the hardware allows (opt-in maximum), bytes.
SHARED_LIMIT = {"sm_80": 163 * 1024, "sm_90": 227 * 1024}


@pytest.fixture(scope="module")
def compiled():
    """(rows, stderr) of one `python -m vivit_kernels.report --json` run."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "vivit_kernels.report", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # a cold compile of every configuration on a busy 2-core machine
    )
    assert proc.returncode == 0, f"vivit_kernels.report failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    try:
        rows = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:  # --json must print nothing but JSON on stdout
        raise AssertionError(f"stdout is not one JSON document ({exc}):\n{proc.stdout[:2000]}") from exc
    assert isinstance(rows, list)
    return rows, proc.stderr


def _label(row):
    return f"{row.get('kernel')} [{row.get('config')}] {row.get('target')}"


def test_rows_have_the_documented_keys(compiled):
    rows, _ = compiled
    for row in rows:
        assert REQUIRED_KEYS <= set(row), f"{_label(row)} lacks {sorted(REQUIRED_KEYS - set(row))}"
        assert row["target"] in TARGETS, _label(row)
        assert isinstance(row["tensor_cores"], bool), _label(row)
    assert len({(r["kernel"], r["config"], r["target"]) for r in rows}) == len(rows), "duplicate kernel rows"


def test_every_configuration_compiles_without_spills_within_limits_on_tensor_cores(compiled):
    rows, _ = compiled
    bad = []
    for row in rows:
        if row.get("error"):
            bad.append(f"{_label(row)}: {row['error']}")
            continue
        if row["spill_bytes"] != 0:
            bad.append(f"{_label(row)}: spills {row['spill_bytes']} bytes")
        if not 0 < row["registers"] <= 255:
            bad.append(f"{_label(row)}: {row['registers']} registers per thread")
        if row["shared_bytes"] > SHARED_LIMIT[row["target"]]:
            bad.append(f"{_label(row)}: {row['shared_bytes']} B shared > {SHARED_LIMIT[row['target']]}")
        if row.get("uses_dot", True) and row["tensor_cores"] is not True:
            bad.append(f"{_label(row)}: no mma/wgmma instruction")
        if row["programs_per_sm"] < 1:
            bad.append(f"{_label(row)}: not even one program fits an SM")
    assert not bad, "kept kernel configurations that fail on a real GPU (prune them):\n" + "\n".join(bad)


@pytest.mark.parametrize("name", report.KERNEL_MODULES)
def test_each_kernel_module_contributes_its_kernels_for_both_targets(compiled, name):
    rows, stderr = compiled
    module = importlib.import_module(f"vivit_kernels.{name}")
    kernels = report.triton_kernels(module)
    assert kernels, f"vivit_kernels/{name}.py defines no Triton kernel"
    assert hasattr(module, "aot_specs"), f"vivit_kernels/{name}.py defines Triton kernels {kernels} but no aot_specs()"
    specs = module.aot_specs()
    assert specs, f"vivit_kernels/{name}.py: aot_specs() is empty"
    mine = [r for r in rows if r.get("module") == name]
    for spec in specs:
        targets = {r["target"] for r in mine if (r["kernel"], r["config"]) == (spec.name, spec.config)}
        assert targets == TARGETS, f"{spec.name} [{spec.config}] compiled for {sorted(targets)}\n{stderr[-2000:]}"
    # Kernel names say the pass, e.g. attention_fwd / attention_bwd.
    for spec in specs:
        assert "_fwd" in spec.name or "_bwd" in spec.name, f"kernel name {spec.name!r} does not say its pass"


def test_row_failures_flags_each_defect():
    ok = {
        "kernel": "k",
        "config": "c",
        "target": "sm_90",
        "registers": 128,
        "spill_bytes": 0,
        "shared_bytes": 1024,
        "shared_limit": 227 * 1024,
        "tensor_cores": True,
        "programs_per_sm": 2,
    }
    assert report.row_failures(ok) == []
    assert report.row_failures({**ok, "spill_bytes": 8})
    assert report.row_failures({**ok, "registers": 256})
    assert report.row_failures({**ok, "shared_bytes": 228 * 1024})
    assert report.row_failures({**ok, "tensor_cores": False})
    assert report.row_failures({**ok, "error": "boom"})


def test_roofline_model_matches_hand_counts():
    ops = {op["op"]: op for op in report.roofline_ops()}
    # ViViT-B/16x2, batch 8: 16 x 196 = 3136 tokens + CLS, 12 heads of 64.
    joint = ops["attention_fwd (joint)"]
    assert joint["flops"] == 4 * (8 * 12) * 3137**2 * 64
    assert joint["fused_bytes"] == 2 * 4 * (8 * 12 * 3137 * 64)
    temporal = ops["attention_fwd (temporal)"]
    assert temporal["flops"] == 4 * (8 * 196 * 12) * 16**2 * 64
    mlp = ops["ln_mlp_fwd"]
    assert mlp["flops"] == 2 * 2 * (8 * 3137) * 768 * 3072
    for op in ops.values():
        assert op["unfused_bytes"] >= op["fused_bytes"] > 0, op["op"]
        # H100: 989 TFLOP/s, 3.35 TB/s.
        floor = 1e6 * max(op["flops"] / 989e12, op["fused_bytes"] / 3.35e12)
        assert op["H100_floor_us"] == pytest.approx(floor)
    # Temporal attention is memory-bound on both GPUs; the joint 3137-token attention is compute-bound.
    assert temporal["H100_bound"] == temporal["A100_bound"] == "memory"
    assert joint["H100_bound"] == "compute"
