"""The four ViViT variants: shapes, gradients, masks, position interpolation, regularisation, errors."""

import pytest
import torch
import torch.nn.functional as F
from _helpers import VARIANTS, randomize

from vivit import VivitConfig, VivitForVideoClassification, VivitModel
from vivit.models import dispatch
from vivit.models.modeling import resize_grid

# Odd sizes everywhere: 7 frames (3 tubelets + 1 dropped frame), 13x11 pixels (3x2 patches + remainders).
SMALL = dict(
    image_size=[13, 11],
    num_frames=7,
    tubelet_size=[2, 4, 5],
    hidden_size=36,
    num_hidden_layers=2,
    num_attention_heads=6,
    intermediate_size=37,
    num_labels=5,
    num_temporal_layers=1,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*tubelet_size")


def small(variant, **overrides):
    return VivitConfig(**{**SMALL, "variant": variant, **overrides})


def video(batch=2, frames=7, height=13, width=11):
    return torch.randn(batch, frames, 3, height, width)


@pytest.mark.parametrize(
    "variant, millions, extra",
    [
        ("spatiotemporal", 88.9, {}),
        ("factorized_encoder", 115.1, {}),
        ("factorized_self_attention", 117.3, {}),
        ("factorized_dot_product", 88.9, {}),
        ("factorized_encoder", 86.7, {"num_temporal_layers": 0}),
    ],
)
def test_vivit_b_parameter_counts_match_the_paper(variant, millions, extra):
    config = VivitConfig.from_preset("vivit-b-16x2", variant=variant, num_labels=400, **extra)
    with torch.device("meta"):
        model = VivitForVideoClassification(config)
    count = model.num_parameters()
    assert abs(count / 1e6 - millions) < 0.06  # the paper's one-decimal figures (rounded or truncated)
    if variant == "spatiotemporal":
        assert count == 88_954_000  # the published HF checkpoint


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_backward_shapes(variant):
    model = randomize(VivitForVideoClassification(small(variant))).train()
    x = video().requires_grad_()
    out = model(x, labels=torch.tensor([1, 4]), output_hidden_states=True, output_attentions=True)
    assert out.logits.shape == (2, 5) and torch.isfinite(out.loss)
    T, S = 3, 6
    layers = 2
    if variant == "factorized_encoder":
        assert out.hidden_states[0].shape == (2, T, 1 + S, 36)
        assert out.hidden_states[-1].shape == (2, 1 + T, 36) and len(out.hidden_states) == (layers + 1) + (1 + 1)
        assert out.attentions[0].shape == (2, T, 6, 1 + S, 1 + S) and out.attentions[-1].shape == (2, 6, 1 + T, 1 + T)
    else:
        tokens = T * S + (variant == "spatiotemporal")
        assert len(out.hidden_states) == layers + 1
        assert all(h.shape == (2, tokens, 36) for h in out.hidden_states)
        if variant == "spatiotemporal":
            assert [a.shape for a in out.attentions] == [(2, 6, tokens, tokens)] * layers
        elif variant == "factorized_self_attention":
            assert [a.shape for a in out.attentions] == [(2, T, 6, S, S), (2, S, 6, T, T)] * layers
        else:
            assert [a.shape for a in out.attentions] == [(2, T, 3, S, S), (2, S, 3, T, T)] * layers
    out.loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # output_attentions does not change the result
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x).logits, model(x, output_attentions=True).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_padded_frames_do_not_matter(variant):
    model = randomize(VivitForVideoClassification(small(variant))).eval()
    x = video()
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])  # clip 2: tubelets 0, 1 real, 2 padded
    y = x.clone()
    y[1, 4:] = torch.randn(3, 3, 13, 11) * 5
    with torch.no_grad():
        a = model(x, frame_mask=mask).logits
        b = model(y, frame_mask=mask).logits
        full = model(x).logits
        full_masked = model(x, frame_mask=torch.ones(2, 7, dtype=torch.bool)).logits
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    assert torch.allclose(full, full_masked, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(a[1], full[1], atol=1e-3)  # the mask does something


def test_hf5_attention_mask_equals_frame_mask():
    model = randomize(VivitForVideoClassification(small("spatiotemporal"))).eval()
    x = video()
    frame_mask = torch.tensor([[True] * 7, [True] * 2 + [False] * 5])
    token_mask = torch.cat([torch.ones(2, 1), frame_mask[:, :6:2].float().repeat_interleave(6, dim=1)], dim=1)
    with torch.no_grad():
        a = model(x, frame_mask=frame_mask).logits
        b = model(x, attention_mask=token_mask.long()).logits
    assert torch.allclose(a, b, atol=1e-6, rtol=1e-6)


def test_resize_grid_is_spatial_bicubic_then_temporal_linear():
    pos = torch.randn(3 * 4 * 5, 8)
    out = resize_grid(pos, (3, 4, 5), (3, 6, 7))
    grid = pos.view(3, 4, 5, 8).permute(0, 3, 1, 2)
    want = F.interpolate(grid, size=(6, 7), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(-1, 8)
    assert torch.allclose(out, want, atol=1e-6)
    # temporal: linear in t stays linear; the end points of a 2 -> 3 resize are the halves of the neighbours
    ramp = torch.arange(2.0).view(2, 1, 1, 1).expand(2, 2, 2, 8).reshape(-1, 8)
    out = resize_grid(ramp, (2, 2, 2), (4, 2, 2)).view(4, 2, 2, 8)
    assert torch.allclose(out[:, 0, 0, 0], torch.tensor([0.0, 0.25, 0.75, 1.0]))
    assert resize_grid(pos, (3, 4, 5), (3, 4, 5)) is pos


@pytest.mark.parametrize("variant", VARIANTS)
def test_interpolate_pos_encoding(variant):
    model = randomize(VivitForVideoClassification(small(variant))).eval()
    x = video()
    with torch.no_grad():
        same = model(x, interpolate_pos_encoding=True).logits
        assert torch.equal(same, model(x).logits)
        bigger = model(video(frames=12, height=21, width=16), interpolate_pos_encoding=True, output_hidden_states=True)
    assert bigger.logits.shape == (2, 5)
    if variant == "spatiotemporal":
        assert bigger.hidden_states[0].shape == (2, 1 + 6 * 5 * 3, 36)
    with pytest.raises(ValueError, match=r"\(frames, height, width\) = \(12, 21, 16\).*expects \(7, 13, 11\)"):
        model(video(frames=12, height=21, width=16))


def test_bad_inputs_have_clear_errors():
    model = VivitForVideoClassification(small("spatiotemporal")).eval()
    with pytest.raises(ValueError, match="must be 5-D"):
        model(torch.randn(7, 3, 13, 11))
    with pytest.raises(ValueError, match="num_channels=3 channels.*got 1"):
        model(torch.randn(2, 7, 1, 13, 11))
    with pytest.raises(ValueError, match=r"\(frames, height, width\) = \(9, 13, 11\)"):
        model(video(frames=9))
    with pytest.raises(ValueError, match=r"\(7, 13, 12\) but the model expects \(7, 13, 11\)"):
        model(video(width=12))
    with pytest.raises(TypeError, match="floating-point.*uint8"):
        model(torch.zeros(2, 7, 3, 13, 11, dtype=torch.uint8))
    with pytest.raises(TypeError, match="float64.*float32"):
        model(video().double())
    with pytest.raises(ValueError, match=r"frame_mask must have shape \(batch, frames\) = \(2, 7\)"):
        model(video(), frame_mask=torch.ones(2, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="smaller than one tubelet"):
        model(video(frames=1), interpolate_pos_encoding=True)


def test_gradient_checkpointing_gives_the_same_gradients():
    model = randomize(VivitForVideoClassification(small("factorized_self_attention"))).train()
    x, labels = video(), torch.tensor([0, 3])
    model(x, labels=labels).loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    model(x, labels=labels).loss.backward()
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, grads[n], atol=1e-6, rtol=1e-5), n


def test_dropout_and_stochastic_depth():
    config = small("spatiotemporal", hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2, drop_path_rate=0.5)
    model = randomize(VivitForVideoClassification(config))
    x = video()
    model.train()
    assert not torch.allclose(model(x).logits, model(x).logits)
    model.eval()
    reference = VivitForVideoClassification(small("spatiotemporal")).eval()
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(model(x).logits, model(x).logits)
        assert torch.allclose(model(x).logits, reference(x).logits, atol=1e-6)
    rates = [block.drop_path for block in model.vivit.layers]
    assert rates == [0.0, 0.5]


def test_autocast_bf16_on_cpu():
    model = randomize(VivitForVideoClassification(small("factorized_dot_product"))).eval()
    x = video()
    with torch.no_grad():
        want = model(x).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = model(x).logits
    assert got.dtype == torch.bfloat16
    assert ((got.float() - want).norm() / want.norm()) < 5e-2


@pytest.mark.parametrize("variant", ["spatiotemporal", "factorized_encoder"])
def test_forward_features_head_and_reset_classifier(variant):
    model = randomize(VivitForVideoClassification(small(variant))).eval()
    x = video()
    mask = torch.tensor([[True] * 7, [True] * 3 + [False] * 4])
    with torch.no_grad():
        feats = model.forward_features(x, frame_mask=mask)
        assert torch.allclose(model.forward_head(feats, frame_mask=mask), model(x, frame_mask=mask).logits)
    model.reset_classifier(11)
    assert model.config.num_labels == 11 and model(x).logits.shape == (2, 11)


def test_base_model_mean_pooling_and_pooler():
    model = randomize(VivitModel(small("spatiotemporal", pooling="mean"))).eval()
    assert model.embeddings.cls_token is None
    with torch.no_grad():
        out = model(video())
    assert out.last_hidden_state.shape == (2, 18, 36)
    pooled = out.last_hidden_state.mean(1)
    assert torch.allclose(out.pooler_output, torch.tanh(model.pooler.dense(pooled)), atol=1e-6)
    assert len(out.to_tuple()) == 2 and out[0] is out.last_hidden_state
    with torch.no_grad():
        as_tuple = model(video(), return_dict=False, output_hidden_states=True)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 3 and len(as_tuple[2]) == 3


def test_factorized_encoder_without_temporal_layers_averages_frames():
    model = randomize(VivitModel(small("factorized_encoder", num_temporal_layers=0), add_pooling_layer=False)).eval()
    mask = torch.tensor([[True] * 7, [True] * 2 + [False] * 5])
    with torch.no_grad():
        out = model(video(), frame_mask=mask)
    assert out.last_hidden_state.shape == (2, 3, 36)
    assert torch.allclose(out.pooler_output[1], out.last_hidden_state[1, 0], atol=1e-6)


def test_attention_order_changes_model_3():
    a = randomize(VivitForVideoClassification(small("factorized_self_attention"))).eval()
    b = VivitForVideoClassification(small("factorized_self_attention", attention_order="time_space")).eval()
    b.load_state_dict(a.state_dict())
    x = video()
    with torch.no_grad():
        assert not torch.allclose(a(x).logits, b(x).logits, atol=1e-4)


def test_dispatch_backend_resolution(monkeypatch):
    monkeypatch.delenv("VIVIT_BACKEND", raising=False)
    assert dispatch.resolve_backend("auto") == "auto"
    monkeypatch.setenv("VIVIT_BACKEND", "eager")
    assert dispatch.resolve_backend("auto") == "eager"
    assert dispatch.resolve_backend("triton") == "triton"
    monkeypatch.setenv("VIVIT_BACKEND", "fast")
    with pytest.raises(ValueError, match="VIVIT_BACKEND"):
        dispatch.resolve_backend("auto")
    with pytest.raises(ValueError, match="backend must be one of"):
        dispatch.resolve_backend("cuda")


def test_strict_triton_raises_naming_the_op():
    x = torch.randn(1, 4, 3, 8, 8, device="meta")
    w = torch.randn(16, 3, 2, 4, 4, device="meta")
    with pytest.raises(NotImplementedError, match="^patch_embed: .*meta"):
        dispatch.patch_embed(x, w, backend="triton")
    # auto falls back to eager for non-CUDA tensors
    assert dispatch.patch_embed(x, w, backend="auto").shape == (1, 8, 16)
    q = torch.randn(1, 5, 2, 4)
    with pytest.raises(NotImplementedError, match="^attention: output_attentions"):
        dispatch.attention(q, q, q, need_weights=True, backend="triton")
    model = VivitForVideoClassification(small("spatiotemporal", backend="triton"))
    with pytest.raises(NotImplementedError, match="^attention: output_attentions"):
        model(video(), output_attentions=True)
