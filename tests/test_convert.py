"""`vivit convert`: scenic (Flax msgpack) checkpoints written here in flax's format -> Hugging Face directories."""

from __future__ import annotations

import json

import msgpack
import numpy as np
import pytest
import torch
import transformers
from _helpers import classic_state
from safetensors.torch import load_file

from vivit.cli import main as cli
from vivit.models.configuration import VivitConfig
from vivit.models.convert import read_flax_msgpack
from vivit.models.modeling import VivitForVideoClassification


def main(argv) -> int:
    """`vivit convert ARGV` through the command's error handler (one stderr line and an exit status)."""
    return cli(["convert", *argv])


GEOMETRY = dict(image_size=16, num_frames=4, tubelet_size=[2, 8, 8], num_channels=3)
WIDTHS = dict(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=40, num_labels=5)


# ---------------------------------------------------------------------------------------------------------------------
# flax's msgpack format, written independently of vivit/models/convert.py


def _flax_bytes(tree) -> bytes:
    def ext(x):
        if isinstance(x, np.ndarray):  # flax: ExtType(1, packb((shape, dtype name, C-order bytes)))
            return msgpack.ExtType(1, msgpack.packb((x.shape, x.dtype.name, x.tobytes("C")), use_bin_type=True))
        if isinstance(x, np.generic):  # flax: numpy scalars as ExtType(3, the same tuple for np.asarray(x))
            x = np.asarray(x)
            return msgpack.ExtType(3, msgpack.packb((x.shape, x.dtype.name, x.tobytes("C")), use_bin_type=True))
        raise TypeError(type(x))

    return msgpack.packb(tree, default=ext, strict_types=True)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().numpy().copy()


def _block_to_scenic(sd: dict, prefix: str, heads: int) -> dict:
    D = sd[prefix + "attention.attention.query.weight"].shape[0]
    attention = {}
    for part in ("query", "key", "value"):
        w, b = sd[f"{prefix}attention.attention.{part}.weight"], sd[f"{prefix}attention.attention.{part}.bias"]
        attention[part] = {"kernel": _np(w.T.reshape(D, heads, D // heads)), "bias": _np(b.reshape(heads, D // heads))}
    w, b = sd[prefix + "attention.output.dense.weight"], sd[prefix + "attention.output.dense.bias"]
    attention["out"] = {"kernel": _np(w.T.reshape(heads, D // heads, D)), "bias": _np(b)}

    def ln(name):
        return {"scale": _np(sd[f"{prefix}{name}.weight"]), "bias": _np(sd[f"{prefix}{name}.bias"])}

    def dense(name):
        return {"kernel": _np(sd[f"{prefix}{name}.weight"].T), "bias": _np(sd[f"{prefix}{name}.bias"])}

    return {
        "LayerNorm_0": ln("layernorm_before"),
        "MultiHeadDotProductAttention_0": attention,
        "LayerNorm_1": ln("layernorm_after"),
        "MlpBlock_0": {"Dense_0": dense("intermediate.dense"), "Dense_1": dense("output.dense")},
    }


def _encoder_to_scenic(sd, prefix, norm, layers, heads, pos) -> dict:
    node = {f"encoderblock_{i}": _block_to_scenic(sd, f"{prefix}encoder.layer.{i}.", heads) for i in range(layers)}
    node["encoder_norm"] = {"scale": _np(sd[norm + ".weight"]), "bias": _np(sd[norm + ".bias"])}
    node["posembed_input"] = {"pos_embedding": _np(pos)}
    return node


def _to_scenic(model: VivitForVideoClassification) -> dict:
    """The train state scenic would have saved for this model (Model 1: `ViViT`; Model 2: `SpaceTimeViViT`)."""
    sd, c = classic_state(model), model.config
    params = {
        "embedding": {
            "kernel": _np(sd["vivit.embeddings.patch_embeddings.projection.weight"].permute(2, 3, 4, 1, 0)),
            "bias": _np(sd["vivit.embeddings.patch_embeddings.projection.bias"]),
        },
        "output_projection": {"kernel": _np(sd["classifier.weight"].T), "bias": _np(sd["classifier.bias"])},
        "pre_logits": {},  # scenic's IdentityLayer: no parameters
    }
    pos = sd["vivit.embeddings.position_embeddings"]
    heads = c.num_attention_heads
    if c.variant == "spatiotemporal":
        params["cls"] = _np(sd["vivit.embeddings.cls_token"])
        params["Transformer"] = _encoder_to_scenic(sd, "vivit.", "vivit.layernorm", c.num_hidden_layers, heads, pos)
    else:
        params["cls_SpatialTransformer"] = _np(sd["vivit.embeddings.cls_token"])
        params["SpatialTransformer"] = _encoder_to_scenic(
            sd, "vivit.", "vivit.layernorm", c.num_hidden_layers, heads, pos
        )
        if c.num_temporal_layers:
            params["cls_TemporalTransformer"] = _np(sd["vivit.temporal_embeddings.cls_token"])
            params["TemporalTransformer"] = _encoder_to_scenic(
                sd,
                "vivit.temporal_",
                "vivit.temporal_layernorm",
                c.num_temporal_layers,
                heads,
                sd["vivit.temporal_embeddings.position_embeddings"],
            )
    return {"global_step": 1000, "optimizer": {"target": params, "state": {"step": 1000}}, "model_state": {}}


def _random_model(**kw) -> VivitForVideoClassification:
    model = VivitForVideoClassification(VivitConfig(**GEOMETRY, **WIDTHS, layer_norm_eps=1e-6, **kw)).eval()
    with torch.no_grad():
        for p in model.parameters():  # nothing at a trivial value (zeros, ones) that would hide a mix-up
            p.normal_(0.0, 0.3)
    return model


# ---------------------------------------------------------------------------------------------------------------------


def test_model1_round_trip_matches_the_expected_weights_and_hugging_face(tmp_path, capsys):
    torch.manual_seed(0)
    model = _random_model()
    src = tmp_path / "checkpoint_1000"
    src.write_bytes(_flax_bytes(_to_scenic(model)))
    assert main([str(src), str(tmp_path / "hf"), "--num-frames", "4"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["variant"] == "spatiotemporal"

    converted = load_file(tmp_path / "hf" / "model.safetensors")
    expected = classic_state(model)
    assert converted.keys() == expected.keys()
    for k, v in expected.items():
        assert torch.equal(converted[k], v), k
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["model_type"] == "vivit" and config["hidden_act"] == "gelu_fast" and config["layer_norm_eps"] == 1e-6
    for key, value in {**GEOMETRY, **WIDTHS}.items():
        if key != "num_labels":
            assert config[key] == value, key

    x = torch.randn(2, 4, 3, 16, 16)
    ours = VivitForVideoClassification.from_pretrained(tmp_path / "hf")
    hf = transformers.VivitForVideoClassification.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(x).logits, model(x).logits)
        torch.testing.assert_close(hf(pixel_values=x).logits, model(x).logits, atol=1e-4, rtol=1e-4)


def test_flax_layouts_mean_what_the_conversion_assumes(tmp_path):
    """Independent of the round trip: flax's conv (NTHWC input, kernel (t, h, w, C, D)) and DenseGeneral
    attention kernels (D, heads, hd), computed here with numpy, equal the converted PyTorch layers."""
    rng = np.random.default_rng(0)
    D, heads, C = 24, 3, 3
    kernel = rng.normal(size=(2, 8, 8, C, D)).astype(np.float32)
    q_kernel = rng.normal(size=(D, heads, D // heads)).astype(np.float32)
    q_bias = rng.normal(size=(heads, D // heads)).astype(np.float32)
    torch.manual_seed(1)
    model = _random_model()
    state = _to_scenic(model)
    params = state["optimizer"]["target"]
    params["embedding"]["kernel"] = kernel
    params["Transformer"]["encoderblock_0"]["MultiHeadDotProductAttention_0"]["query"] = {
        "kernel": q_kernel,
        "bias": q_bias,
    }
    (tmp_path / "ckpt").write_bytes(_flax_bytes(state))
    main([str(tmp_path / "ckpt"), str(tmp_path / "hf"), "--num-frames", "4"])
    converted = VivitForVideoClassification.from_pretrained(tmp_path / "hf")

    video = rng.normal(size=(4, 16, 16, C)).astype(np.float32)  # (T, H, W, C), flax's layout
    # flax Conv, VALID padding, stride = kernel: out[t', i, j] = sum over the tubelet of x * kernel
    patches = video.reshape(2, 2, 2, 8, 2, 8, C).transpose(0, 2, 4, 1, 3, 5, 6)  # (T', H', W', t, h, w, C)
    expected = np.einsum("abcthwk,thwkd->abcd", patches, kernel)
    conv = converted.vivit.embeddings.patch_embeddings.projection
    got = torch.nn.functional.conv3d(
        torch.from_numpy(video).permute(3, 0, 1, 2)[None], conv.weight, None, conv.weight.shape[2:]
    )
    np.testing.assert_allclose(got[0].permute(1, 2, 3, 0).detach().numpy(), expected, rtol=1e-4, atol=1e-4)
    # flax DenseGeneral: (..., D) x (D, heads, hd) -> (..., heads, hd)
    tokens = rng.normal(size=(5, D)).astype(np.float32)
    expected_q = (np.einsum("nd,dhk->nhk", tokens, q_kernel) + q_bias).reshape(5, D)
    sd = converted.state_dict()
    w, b = (
        sd["vivit.layers.0.attention.q_proj.weight"],
        sd["vivit.layers.0.attention.q_proj.bias"],
    )
    np.testing.assert_allclose((torch.from_numpy(tokens) @ w.T + b).numpy(), expected_q, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("temporal_layers", [1, 0])
def test_model2_round_trip(tmp_path, temporal_layers, capsys):
    torch.manual_seed(2)
    model = _random_model(variant="factorized_encoder", num_temporal_layers=temporal_layers)
    src = tmp_path / "checkpoint"
    src.write_bytes(_flax_bytes(_to_scenic(model)))
    argv = [str(src), str(tmp_path / "hf")]
    if temporal_layers == 0:  # scenic's spatial-only baseline records no frame count
        assert main(argv) == 1
        assert "--num-frames" in capsys.readouterr().err
        assert not (tmp_path / "hf").exists()  # nothing left behind by the failed conversion
        argv += ["--num-frames", "4"]
    assert main(argv) == 0
    converted = VivitForVideoClassification.from_pretrained(tmp_path / "hf")
    assert converted.config.variant == "factorized_encoder"
    assert converted.config.num_temporal_layers == temporal_layers and converted.config.num_frames == 4
    for k, v in model.state_dict().items():
        assert torch.equal(converted.state_dict()[k], v), k
    x = torch.randn(2, 4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(converted(x).logits, model(x).logits)


def test_reader_handles_bfloat16_chunked_arrays_and_wrong_frame_counts(tmp_path, capsys):
    values = torch.randn(6, 4).to(torch.bfloat16)
    bits = values.view(torch.int16).numpy()
    raw = msgpack.ExtType(1, msgpack.packb(((6, 4), "bfloat16", bits.tobytes("C")), use_bin_type=True))
    flat = np.arange(10, dtype=np.float32)
    chunked = {
        "__msgpack_chunked_array__": True,
        "shape": {"0": 2, "1": 5},
        "chunks": {"0": flat[:4], "1": flat[4:]},
    }
    (tmp_path / "ckpt").write_bytes(_flax_bytes({"a": raw, "b": chunked, "c": np.int32(7)}))
    tree = read_flax_msgpack(tmp_path / "ckpt")
    assert torch.equal(tree["a"], values.float())
    assert torch.equal(tree["b"], torch.arange(10.0).reshape(2, 5))
    assert tree["c"].item() == 7

    torch.manual_seed(3)
    (tmp_path / "m1").write_bytes(_flax_bytes(_to_scenic(_random_model())))
    capsys.readouterr()
    assert main([str(tmp_path / "m1"), str(tmp_path / "out"), "--num-frames", "6"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--num-frames" in err[0]
    (tmp_path / "empty").write_bytes(_flax_bytes({"optimizer": {"state": {}}}))
    assert main([str(tmp_path / "empty"), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no ViViT parameters" in err[0] and str(tmp_path / "empty") in err[0]
    assert main([str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    assert "missing" in capsys.readouterr().err
    assert main([str(tmp_path / "m1"), str(tmp_path / "out"), "--num-frames", "0"]) == 2  # refused before reading
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["vivit convert: error: argument --num-frames: expected an integer >= 1, got 0"]
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "empty", "m1"]


def test_existing_destination_is_kept_unless_overwrite_and_survives_a_failed_check(tmp_path, capsys, monkeypatch):
    import vivit.models.convert as convert_module

    torch.manual_seed(4)
    src = tmp_path / "ckpt"
    src.write_bytes(_flax_bytes(_to_scenic(_random_model())))
    dst = tmp_path / "hf"
    dst.mkdir()
    (dst / "config.json").write_text('{"keep": true}')
    before = {p.name: p.read_bytes() for p in dst.iterdir()}
    assert main([str(src), str(dst), "--num-frames", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(dst) in err[0] and "--overwrite" in err[0]
    assert {p.name: p.read_bytes() for p in dst.iterdir()} == before

    def failing_check(directory):
        assert (directory / "model.safetensors").is_file() and directory != dst
        raise RuntimeError("the converted checkpoint does not load cleanly: planted")

    monkeypatch.setattr(convert_module, "check_load", failing_check)
    assert main([str(src), str(dst), "--num-frames", "4", "--overwrite"]) == 1
    assert "planted" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in dst.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "hf"]  # no temporary copy left

    monkeypatch.undo()
    assert main([str(src), str(dst), "--num-frames", "4", "--overwrite"]) == 0
    assert sorted(p.name for p in dst.iterdir()) == ["config.json", "model.safetensors"]
    assert VivitForVideoClassification.from_pretrained(dst).config.num_frames == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "hf"]
