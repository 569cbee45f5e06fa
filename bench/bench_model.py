"""Whole-model rows: inference and a training step, plus the peak memory of a training step.

Model 1 (spatiotemporal) against Hugging Face transformers (SDPA and eager attention) with the same weights (our
`save_pretrained` loaded by HF's `from_pretrained`); Models 2-4, which HF lacks, against our eager path and
`torch.compile` of it. The CPU rows use the small CPU setting: image 112, 8 frames, hidden 384, 6 layers, 6 heads,
MLP 1536, batch 2, fp32, 2 threads; its share of the measured matmul rate is in the summary. On a GPU: ViViT-B/16x2
(32x224^2), batch 4, bf16, ours = backend "auto" (Triton where supported).

A training step = forward with labels (cross-entropy) + backward + SGD step. FLOPs are counted once with
`torch.utils.flop_counter` on our eager model (matmuls, convolutions, attention).
"""

from __future__ import annotations

import tempfile

import _harness as H
import pytest
import torch

VARIANTS = ("factorized_encoder", "factorized_self_attention", "factorized_dot_product")
MODES = ("inference", "train")


def _setting():
    if H.on_gpu():
        return dict(preset="vivit-b-16x2", batch=4, dtype=torch.bfloat16, labels=400)
    config = dict(
        image_size=112,
        num_frames=8,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=6,
        intermediate_size=1536,
    )
    if H.timing_disabled():  # smoke pass: the same code paths at a third of the depth
        config.update(num_hidden_layers=2, num_temporal_layers=1)
    return dict(config=config, batch=2, dtype=torch.float32, labels=10)


def _config(variant="spatiotemporal", backend="eager"):
    from vivit import VivitConfig

    s = _setting()
    if "preset" in s:
        return VivitConfig.from_preset(s["preset"], variant=variant, backend=backend, num_labels=s["labels"])
    return VivitConfig(**s["config"], variant=variant, backend=backend, num_labels=s["labels"])


def _ours(variant="spatiotemporal", backend="eager"):
    from vivit import VivitForVideoClassification

    return VivitForVideoClassification(_config(variant, backend)).to(H.device(), _setting()["dtype"])


def _inputs(config):
    s = _setting()
    size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
    pixels = torch.randn(s["batch"], config.num_frames, config.num_channels, size, size, device=H.device())
    labels = torch.randint(0, config.num_labels, (s["batch"],), device=H.device())
    return pixels.to(s["dtype"]), labels


def _step(model, pixels, labels, mode):
    """A zero-argument callable: one inference forward, or one training step."""
    if mode == "inference":
        model.eval()

        def run():
            with torch.no_grad():
                return model(pixel_values=pixels).logits

        return run
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)

    def run():
        loss = model(pixel_values=pixels, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return run


def _count_flops(model, pixels, labels, mode) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        if mode == "inference":
            with torch.no_grad():
                model(pixel_values=pixels)
        else:
            model(pixel_values=pixels, labels=labels).loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def _hf_from(ours, attn: str):
    """HF's VivitForVideoClassification with our weights, through a save/load round trip."""
    transformers = pytest.importorskip("transformers")
    with tempfile.TemporaryDirectory() as tmp:
        ours.save_pretrained(tmp)
        hf = transformers.VivitForVideoClassification.from_pretrained(tmp, attn_implementation=attn)
    return hf.to(H.device(), _setting()["dtype"])


def _ours_label() -> str:
    return "vivit auto" if H.on_gpu() else "vivit eager"


@pytest.mark.parametrize("mode", MODES)
def test_model1_vs_hf(benchmark, mode):
    ours = _ours(backend="auto" if H.on_gpu() else "eager")
    pixels, labels = _inputs(ours.config)
    hf = {attn: _hf_from(ours, attn) for attn in ("sdpa", "eager")}
    # Same weights, same outputs: the comparison is of the same model (a correctness check, not a timing one).
    ours.eval()
    with torch.no_grad():
        ref = ours(pixel_values=pixels).logits.float()
        for attn, model in hf.items():
            model.eval()
            got = model(pixel_values=pixels).logits.float()
            # fp32: the parity the test suite holds; bf16 on a GPU: a coarse bound relative to the logits' scale.
            tol = 1e-4 if _setting()["dtype"] == torch.float32 else 5e-2 * ref.abs().max().item()
            err = (got - ref).abs().max().item()
            assert err <= tol, f"HF {attn} logits differ from ours by {err:.3g} (> {tol:.3g})"
    baselines = {f"HF {attn}": _step(model, pixels, labels, mode) for attn, model in hf.items()}
    eager = ours
    if H.on_gpu():
        eager = _ours(backend="eager")
        eager.load_state_dict(ours.state_dict())
        compiled = _ours(backend="eager")
        compiled.load_state_dict(ours.state_dict())
        baselines["vivit eager"] = _step(eager, pixels, labels, mode)
        baselines["torch.compile(vivit eager)"] = _step(torch.compile(compiled), pixels, labels, mode)
    flops = _count_flops(eager, pixels, labels, mode)  # Triton custom ops are opaque to the counter
    op = f"Model 1 {mode}" + ("" if H.on_gpu() or H.timing_disabled() else " (small CPU config)")
    H.compare(
        benchmark,
        op,
        (_ours_label(), _step(ours, pixels, labels, mode)),
        baselines,
        flops=flops,
        dtype=_setting()["dtype"],
        group="model",
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_vs_eager_and_compile(benchmark, variant, mode):
    ours = _ours(variant, backend="auto" if H.on_gpu() else "eager")
    pixels, labels = _inputs(ours.config)
    baselines, skipped = {}, {}
    eager = ours
    if H.on_gpu():
        eager = _ours(variant, backend="eager")
        eager.load_state_dict(ours.state_dict())
        baselines["vivit eager"] = _step(eager, pixels, labels, mode)
    flops = _count_flops(eager, pixels, labels, mode)
    if H.timing_disabled() and not H.on_gpu():
        skipped["torch.compile(vivit eager)"] = "skipped with --benchmark-disable on the CPU (inductor compiles ~1 min)"
    else:
        compiled = _ours(variant, backend="eager")
        compiled.load_state_dict(ours.state_dict())
        baselines["torch.compile(vivit eager)"] = _step(torch.compile(compiled), pixels, labels, mode)
    H.compare(
        benchmark,
        f"{variant} {mode}",
        (_ours_label(), _step(ours, pixels, labels, mode)),
        baselines,
        flops=flops,
        skipped=skipped,
        dtype=_setting()["dtype"],
        group="model",
    )


# ----------------------------------------------------------------------------------------------------------------------
# Peak memory of one training step
# ----------------------------------------------------------------------------------------------------------------------


def test_train_step_peak_memory(benchmark):
    ours = _ours(backend="auto" if H.on_gpu() else "eager")
    pixels, labels = _inputs(ours.config)
    impls = {_ours_label(): ours, "HF sdpa": _hf_from(ours, "sdpa")}
    if not H.timing_disabled():
        impls["HF eager"] = _hf_from(ours, "eager")
    peaks = {}
    for name, model in impls.items():
        peaks[name] = H.peak_bytes(_step(model, pixels, labels, "train"))
        del model
    impls.clear()
    method = H.peak_memory_method()
    H.MEMORY.append(dict(op="Model 1 training step", peaks=peaks, ours=_ours_label(), method=method))
    benchmark.extra_info.update(peak_bytes=peaks, method=method)
    benchmark.pedantic(lambda: None, rounds=1)  # memory row: nothing to time
    assert all(v > 0 for v in peaks.values()), peaks
