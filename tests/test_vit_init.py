"""Initialising ViViT from image ViTs (vivit/models/vit_init.py): where the video model must reduce to the image
model."""

from __future__ import annotations

import json
import re

import pytest
import torch
import transformers

from vivit.models.configuration import VivitConfig
from vivit.models.modeling import VivitForVideoClassification
from vivit.models.vit_init import inflate_patch_kernel, init_from_vit, load_vit_state_dict, spatial_position_table
from vivit.training.train import main

VARIANTS = ("spatiotemporal", "factorized_encoder", "factorized_self_attention", "factorized_dot_product")


def _random_vit(image_size=16, patch=8, layers=2, classifier=False):
    """A random HF ViT whose LayerNorms, CLS and position embeddings are not at their (trivial) initial values."""
    config = transformers.ViTConfig(
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=48,
        image_size=image_size,
        patch_size=patch,
    )
    vit = transformers.ViTForImageClassification(config) if classifier else transformers.ViTModel(config)
    with torch.no_grad():
        for name, p in vit.named_parameters():
            p.normal_(1.0 if name.endswith("layernorm_before.weight") or "layernorm_after.weight" in name else 0.0, 0.2)
    return vit.eval()


def _video_config(settings, **kw):
    base = dict(image_size=16, num_frames=2, tubelet_size=[2, 8, 8], num_attention_heads=2, num_labels=3)
    return VivitConfig(**{**settings, **base, **kw})


def test_central_frame_init_with_one_tubelet_reproduces_the_vit():
    """num_frames == tubelet depth: the video model sees the image as its central frame and must equal the ViT."""
    torch.manual_seed(0)
    vit = _random_vit()
    state, settings = load_vit_state_dict(vit.state_dict())
    assert settings["layer_norm_eps"] == 1e-12 and settings["hidden_act"] == "gelu"
    model = VivitForVideoClassification(_video_config(settings)).eval()
    assert init_from_vit(model, state) == ["classifier.bias", "classifier.weight"]
    image = torch.randn(3, 3, 16, 16)
    clip = torch.randn(3, 2, 3, 16, 16)  # frame 0 is noise: the central-frame kernel (index t // 2 = 1) ignores it
    clip[:, 1] = image
    with torch.no_grad():
        expected = vit(pixel_values=image, output_hidden_states=True)
        got = model.vivit(clip, output_hidden_states=True)
    torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, atol=2e-5, rtol=1e-5)
    for a, b in zip(got.hidden_states, expected.hidden_states):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("tubelet", ["central", "inflate"])
def test_factorised_encoder_without_temporal_layers_on_a_still_clip_reproduces_the_vit(tubelet):
    """Model 2, L_t = 0, identical frames: every per-frame CLS is the ViT's, so is their average."""
    torch.manual_seed(1)
    vit = _random_vit()
    state, settings = load_vit_state_dict(vit.state_dict())
    config = _video_config(settings, num_frames=6, variant="factorized_encoder", num_temporal_layers=0)
    model = VivitForVideoClassification(config).eval()
    init_from_vit(model, state, tubelet=tubelet)
    image = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = vit(pixel_values=image).last_hidden_state[:, 0]
        got = model.vivit(image[:, None].expand(-1, 6, -1, -1, -1)).pooler_output
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-5)


def test_factorised_self_attention_starts_as_the_image_block():
    """Model 3 without temporal init: the temporal MSA's output projection is zero, so its q/k/v do not matter."""
    torch.manual_seed(2)
    state, settings = load_vit_state_dict(_random_vit().state_dict())
    config = _video_config(settings, num_frames=4, variant="factorized_self_attention")
    model = VivitForVideoClassification(config).eval()
    fresh = init_from_vit(model, state)
    assert all("classifier" in k or "temporal" in k for k in fresh)
    assert not any("temporal_attention.o_proj" in k for k in fresh)
    x = torch.randn(2, 4, 3, 16, 16)
    with torch.no_grad():
        before = model(x).logits
        changed = 0
        for name, p in model.named_parameters():
            if re.search(r"temporal_attention\.[qkv]_proj\.", name):
                p.normal_()
                changed += 1
        assert changed == 2 * config.num_hidden_layers * 3  # weight and bias of q, k and v in every block
        torch.testing.assert_close(model(x).logits, before)
    # with temporal_attention=True the temporal MSA is a copy of the spatial one
    twin = VivitForVideoClassification(config)
    assert init_from_vit(twin, state, temporal_attention=True) == ["classifier.bias", "classifier.weight"]
    sd = twin.state_dict()
    for tail in ("q_proj.weight", "o_proj.bias"):
        assert torch.equal(sd[f"vivit.layers.1.temporal_attention.{tail}"], sd[f"vivit.layers.1.attention.{tail}"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_initialises_from_hf_and_timm_alike(variant):
    torch.manual_seed(3)
    vit = _random_vit(classifier=True)
    sd = vit.state_dict()
    hf_state, settings = load_vit_state_dict(sd)
    # the same weights in timm's layout, written here from the HF tensors
    timm = {
        "cls_token": sd["vit.embeddings.cls_token"],
        "pos_embed": sd["vit.embeddings.position_embeddings"],
        "patch_embed.proj.weight": sd["vit.embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": sd["vit.embeddings.patch_embeddings.projection.bias"],
        "norm.weight": sd["vit.layernorm.weight"],
        "norm.bias": sd["vit.layernorm.bias"],
        "head.weight": sd["classifier.weight"],
        "head.bias": sd["classifier.bias"],
    }
    for i in range(2):
        hf = f"vit.layers.{i}."
        for ours, theirs in (
            ("norm1", "layernorm_before"),
            ("norm2", "layernorm_after"),
            ("attn.proj", "attention.o_proj"),
        ):
            for p in ("weight", "bias"):
                timm[f"blocks.{i}.{ours}.{p}"] = sd[f"{hf}{theirs}.{p}"]
        for p in ("weight", "bias"):
            timm[f"blocks.{i}.mlp.fc1.{p}"] = sd[f"{hf}mlp.fc1.{p}"]
            timm[f"blocks.{i}.mlp.fc2.{p}"] = sd[f"{hf}mlp.fc2.{p}"]
            timm[f"blocks.{i}.attn.qkv.{p}"] = torch.cat([sd[f"{hf}attention.{q}_proj.{p}"] for q in "qkv"])
    timm_state, timm_settings = load_vit_state_dict(timm)
    assert timm_settings["layer_norm_eps"] == 1e-6  # timm's own default
    config = _video_config(settings, num_frames=4, variant=variant)
    models = []
    for source in (hf_state, timm_state):
        torch.manual_seed(7)  # the parts a ViT does not provide start equal
        models.append(VivitForVideoClassification(config))
        fresh = init_from_vit(models[-1], source, tubelet="rank_pool")
        assert all(k.startswith(("classifier.", "vivit.temporal_")) or ".temporal_" in k for k in fresh), fresh
    a, b = models
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    x = torch.randn(2, 4, 3, 16, 16)
    assert a.eval()(x).logits.shape == (2, 3)


def test_tubelet_kernels_and_position_tables():
    w = torch.randn(5, 3, 4, 4)
    central = inflate_patch_kernel(w, 3, "central")
    assert torch.equal(central[:, :, 1], w) and not central[:, :, [0, 2]].any()
    torch.testing.assert_close(inflate_patch_kernel(w, 4, "inflate").sum(2), w)
    for t in (1, 2, 3, 5):  # approximate rank pooling: a temporal-difference filter, coefficients sum to zero
        rp = inflate_patch_kernel(w, t, "rank_pool")
        torch.testing.assert_close(rp.sum(2), torch.zeros_like(w), atol=1e-5, rtol=0)
    alpha = inflate_patch_kernel(torch.ones(1, 1, 1, 1), 2, "rank_pool").flatten()
    torch.testing.assert_close(alpha, torch.tensor([-0.5, 0.5]))
    with pytest.raises(ValueError, match="method"):
        inflate_patch_kernel(w, 2, "mean")
    pos = torch.randn(16, 8)
    assert spatial_position_table(pos, (4, 4), resize=False) is pos
    assert spatial_position_table(pos, (6, 6), resize=True).shape == (36, 8)
    with pytest.raises(ValueError, match="position='resize'"):
        spatial_position_table(pos, (6, 6), resize=False)


def test_tiled_and_resized_position_embeddings_in_the_model():
    torch.manual_seed(4)
    state, settings = load_vit_state_dict(_random_vit().state_dict())
    model = VivitForVideoClassification(_video_config(settings, num_frames=6))  # T' = 3
    init_from_vit(model, state)
    pos = model.vivit.embeddings.position_embeddings[0]
    vit_pos = state["pos"][0]
    torch.testing.assert_close(pos[0], vit_pos[0])
    for t in range(3):  # the spatial table repeated for every temporal index
        torch.testing.assert_close(pos[1 + 4 * t : 5 + 4 * t], vit_pos[1:])
    bigger = _video_config(settings, image_size=24)  # 3x3 patches instead of the ViT's 2x2
    with pytest.raises(ValueError, match="position='resize'"):
        init_from_vit(VivitForVideoClassification(bigger), state)
    model = VivitForVideoClassification(bigger)
    init_from_vit(model, state, position="resize")
    assert model.vivit.embeddings.position_embeddings.shape == (1, 10, 32)


def test_mismatches_are_named():
    state, settings = load_vit_state_dict(_random_vit().state_dict())
    with pytest.raises(ValueError, match="patch size"):
        init_from_vit(VivitForVideoClassification(_video_config(settings, tubelet_size=[2, 4, 4])), state)
    with pytest.raises(ValueError, match="num_hidden_layers"):
        init_from_vit(VivitForVideoClassification(_video_config({**settings, "num_hidden_layers": 3})), state)
    with pytest.raises(ValueError, match="tubelet"):
        init_from_vit(VivitForVideoClassification(_video_config(settings)), state, tubelet="middle")
    with pytest.raises(ValueError, match="not a Hugging Face ViT"):
        load_vit_state_dict({"foo.weight": torch.zeros(1)})


def test_trainer_starts_from_a_saved_hf_vit_directory(tmp_path, capsys):
    """`vivit train --init VIT_DIR`: widths, eps and activation from the ViT's config.json, geometry from --config."""
    torch.manual_seed(5)
    vit = _random_vit()
    vit.save_pretrained(tmp_path / "vit")
    config = tmp_path / "video.json"
    config.write_text(json.dumps(dict(image_size=16, num_frames=4, tubelet_size=[2, 8, 8], num_attention_heads=2)))
    argv = ["--config", str(config), "--init", str(tmp_path / "vit"), "--epochs", "1", "--train-samples", "16"]
    argv += ["--val-samples", "8", "--batch-size", "8", "--output-dir", str(tmp_path / "run"), "--no-progress"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    model = VivitForVideoClassification.from_pretrained(summary["checkpoint"])
    assert model.config.layer_norm_eps == 1e-12 and model.config.hidden_act == "gelu"
    assert model.config.hidden_size == 32 and model.config.intermediate_size == 48
