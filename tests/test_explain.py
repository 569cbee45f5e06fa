"""`vivit explain`: attention rollout maths, per-variant maps, the PNG / GIF and the command end to end."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from vivit.cli import main as cli
from vivit.data.io import write_video
from vivit.data.processing import VivitImageProcessor
from vivit.data.synthetic import SyntheticMotion
from vivit.models.configuration import VivitConfig
from vivit.models.modeling import VivitForVideoClassification
from vivit.viz.attention import attention_rollout, head_mean_with_identity, reduce_attentions
from vivit.viz.explain import draw_attention, explain_clip, explain_video, save_gif

LABELS = {0: "left", 1: "right", 2: "up"}
TINY = dict(
    image_size=32,
    num_frames=8,
    tubelet_size=[2, 8, 8],
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    num_temporal_layers=1,
    id2label=LABELS,
)
GRID = (4, 4, 4)  # (T', h, w) of TINY
PROC = VivitImageProcessor.from_preset("original", size={"shortest_edge": 32}, crop_size=32)
VARIANTS = ("spatiotemporal", "factorized_encoder", "factorized_self_attention", "factorized_dot_product")


def _model(variant, **overrides):
    torch.manual_seed(0)
    config = VivitConfig(**{**TINY, **overrides}, variant=variant)
    return VivitForVideoClassification(config).eval()


def _clip(index=0):
    clip, _ = SyntheticMotion(4, num_frames=8, image_size=32, split="test").render(index)
    return np.round(clip.transpose(0, 2, 3, 1) * 255).astype(np.uint8)  # (T, H, W, C)


def _probs(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g).softmax(-1)


# ------------------------------------------------------------------------------------------------- rollout maths
def test_rollout_matches_hand_computed_example():
    # layer 1, two heads: mean [[1, 0], [.5, .5]]; + I and renormalised: [[1, 0], [.25, .75]]
    layer1 = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
    # layer 2, one head: + I and renormalised: [[.6, .4], [.3, .7]]
    layer2 = torch.tensor([[[0.2, 0.8], [0.6, 0.4]]])
    assert torch.allclose(
        head_mean_with_identity(layer1), torch.tensor([[1.0, 0.0], [0.25, 0.75]], dtype=torch.float64)
    )
    rollout = attention_rollout([layer1, layer2])
    # layer 2 @ layer 1 (last layer first); the other order would give [[.6, .4], [.375, .625]]
    expected = torch.tensor([[0.7, 0.3], [0.475, 0.525]], dtype=torch.float64)
    assert torch.allclose(rollout, expected, atol=1e-12)


def test_rollout_renormalises_rows_that_do_not_sum_to_one():
    masked = torch.tensor([[[0.0, 0.0], [0.5, 0.5]]])  # a padded query row: all zeros
    assert torch.allclose(
        head_mean_with_identity(masked), torch.tensor([[1.0, 0.0], [0.25, 0.75]], dtype=torch.float64)
    )


def _dense_factorized(axis, probs, T, S):
    """(B, T, H, S, S) spatial or (B, S, H, T, T) temporal maps as (B, H, T*S, T*S) block matrices, by loops."""
    B, H = probs.shape[0], probs.shape[2]
    dense = torch.zeros(B, H, T * S, T * S, dtype=torch.float64)
    for t in range(T):
        for s in range(S):
            for u in range(S if axis == "spatial" else T):
                if axis == "spatial":
                    dense[:, :, t * S + s, t * S + u] = probs[:, t, :, s, u]
                else:
                    dense[:, :, t * S + s, u * S + s] = probs[:, s, :, t, u]
    return dense


@pytest.mark.parametrize(
    "variant, order",
    [
        ("factorized_self_attention", "space_time"),
        ("factorized_self_attention", "time_space"),
        ("factorized_dot_product", "space_time"),
    ],
)
def test_factorized_rollout_matches_dense_rollout(variant, order):
    T, h, w, H, layers = 3, 2, 2, 2, 2
    S = h * w
    config = SimpleNamespace(
        variant=variant, pooling="mean", num_hidden_layers=layers, attention_order=order, num_temporal_layers=0
    )
    maps, dense = [], []
    axes = ("temporal", "spatial") if order == "time_space" else ("spatial", "temporal")
    for layer in range(layers):
        block = []
        for k, axis in enumerate(axes):
            shape = (1, T, H, S, S) if axis == "spatial" else (1, S, H, T, T)
            maps.append(_probs(*shape, seed=10 * layer + k))
            block.append(_dense_factorized(axis, maps[-1], T, S))
        if variant == "factorized_dot_product":  # one attention: its heads are the spatial ones and the temporal ones
            dense.append(torch.cat(block, dim=1))
        else:
            dense.extend(block)
    out = reduce_attentions(maps, config, (T, h, w))
    expected = attention_rollout(dense)[0].mean(0).reshape(T, S)  # mean pooling: the average of the rows
    got = out.spatial[0].reshape(T, S) * out.temporal[0][:, None]
    assert torch.allclose(got, expected, atol=1e-12)
    assert "mean-pooled" in out.description


def test_spatiotemporal_and_factorized_encoder_rollout_match_dense_rollout():
    T, h, w, H = 2, 2, 3, 2
    S = h * w
    config = SimpleNamespace(variant="spatiotemporal", pooling="cls", num_hidden_layers=2)
    maps = [_probs(1, H, 1 + T * S, 1 + T * S, seed=i) for i in range(2)]
    out = reduce_attentions(maps, config, (T, h, w))
    row = attention_rollout(maps)[0, 0, 1:]
    assert torch.allclose(out.spatial[0].reshape(T, S) * out.temporal[0][:, None], (row / row.sum()).reshape(T, S))

    config = SimpleNamespace(variant="factorized_encoder", pooling="cls", num_hidden_layers=2, num_temporal_layers=1)
    spatial = [_probs(1, T, H, 1 + S, 1 + S, seed=i) for i in range(2)]
    temporal = [_probs(1, H, 1 + T, 1 + T, seed=5)]
    out = reduce_attentions(spatial + temporal, config, (T, h, w))
    for t in range(T):
        row = attention_rollout([m[:, t] for m in spatial])[0, 0, 1:]
        assert torch.allclose(out.spatial[0, t].reshape(S), row / row.sum())
    row = attention_rollout(temporal)[0, 0, 1:]
    assert torch.allclose(out.temporal[0], row / row.sum())


def test_reduce_refuses_maps_that_do_not_fit_the_config():
    config = SimpleNamespace(variant="spatiotemporal", pooling="cls", num_hidden_layers=2)
    with pytest.raises(ValueError, match="expected 2 maps"):
        reduce_attentions([_probs(1, 2, 9, 9)], config, (2, 2, 2))
    with pytest.raises(ValueError, match=r"attentions\[1\]: expected shape"):
        reduce_attentions([_probs(1, 2, 9, 9), _probs(1, 2, 8, 8)], config, (2, 2, 2))


# ------------------------------------------------------------------------------------------------- models
@pytest.mark.parametrize(
    "variant, overrides",
    [(v, {}) for v in VARIANTS]
    + [("spatiotemporal", {"pooling": "mean"}), ("factorized_encoder", {"num_temporal_layers": 0})],
)
def test_explain_clip_maps_per_variant(variant, overrides):
    model = _model(variant, **overrides)
    maps = explain_clip(model, PROC, _clip(), topk=2)
    assert maps.frames.shape == (8, 32, 32, 3) and maps.frames.dtype == np.uint8
    assert maps.spatial.shape == GRID
    assert np.allclose(maps.spatial.sum((1, 2)), 1.0, atol=1e-9)
    assert (maps.spatial >= 0).all()
    if overrides.get("num_temporal_layers") == 0:
        assert maps.temporal is None and "no weights over time" in maps.description
    else:
        assert maps.temporal.shape == (GRID[0],) and np.isclose(maps.temporal.sum(), 1.0, atol=1e-9)
    assert ("CLS" in maps.description) == (model.config.pooling == "cls")
    assert ("mean-pooled" in maps.description) == (model.config.pooling == "mean")
    assert len(maps.labels) == 2 and maps.labels[0][1] >= maps.labels[1][1]
    assert model.config.backend == "auto"  # the eager backend only for the forward


def test_display_frames_are_the_clip_the_model_sees():
    clip = _clip()
    maps = explain_clip(_model("spatiotemporal"), PROC, clip)
    assert np.array_equal(maps.frames, clip)  # same size: resize and crop change nothing


def test_model1_with_uniform_attention_gives_uniform_maps():
    model = _model("spatiotemporal")
    with torch.no_grad():
        for layer in model.vivit.layers:  # q = k = 0: every query attends uniformly to every key
            for proj in (layer.attention.q_proj, layer.attention.k_proj):
                proj.weight.zero_()
                proj.bias.zero_()
    maps = explain_clip(model, PROC, _clip())
    assert np.allclose(maps.spatial, 1.0 / 16, atol=1e-6)
    assert np.allclose(maps.temporal, 0.25, atol=1e-6)


def test_model1_with_attention_forced_onto_three_tubelets():
    model = _model("spatiotemporal")
    with torch.no_grad():
        for layer in model.vivit.layers:
            for proj in (layer.attention.q_proj, layer.attention.k_proj):
                proj.weight.zero_()
                proj.bias.zero_()
    # keys allowed: CLS and tubelets (t'=1, s=5), (t'=2, s=5), (t'=2, s=6); uniform over them, so the CLS token's
    # rollout after L layers is 2^-L on itself and the rest spread evenly over the allowed keys
    allowed = torch.zeros(1, 1 + 64, dtype=torch.bool)
    allowed[0, [0, 1 + 16 + 5, 1 + 32 + 5, 1 + 32 + 6]] = True
    pixel_values = torch.randn(1, 8, 3, 32, 32)
    out = model(pixel_values, attention_mask=allowed, output_attentions=True)
    maps = reduce_attentions(out.attentions, model.config, GRID)
    assert torch.allclose(maps.temporal[0], torch.tensor([0.0, 1 / 3, 2 / 3, 0.0], dtype=torch.float64), atol=1e-6)
    expected = torch.zeros(4, 16, dtype=torch.float64)
    expected[1, 5] = 1.0
    expected[2, 5] = expected[2, 6] = 0.5
    assert torch.allclose(maps.spatial[0].reshape(4, 16), expected, atol=1e-6)


# ------------------------------------------------------------------------------------------------- pictures
def test_png_is_valid_large_and_not_one_colour(tmp_path):
    maps = explain_clip(_model("factorized_encoder"), PROC, _clip())
    path = draw_attention(maps, tmp_path / "a.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= 640 and image.height >= 480
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 100
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary file left behind


def test_png_without_weights_over_time(tmp_path):
    maps = explain_clip(_model("factorized_encoder", num_temporal_layers=0), PROC, _clip())
    with Image.open(draw_attention(maps, tmp_path / "a.png")) as image:
        assert image.width >= 640 and image.height >= 480


def test_gif_has_one_frame_per_clip_frame(tmp_path):
    maps = explain_clip(_model("factorized_dot_product"), PROC, _clip())
    path = save_gif(maps, tmp_path / "a.gif")
    with Image.open(path) as image:
        assert image.format == "GIF" and image.n_frames == 8
        assert image.width >= 256
        frames = []
        for k in range(image.n_frames):
            image.seek(k)
            frames.append(np.asarray(image.convert("RGB")))
    assert len({f.tobytes() for f in frames}) == 8


# ------------------------------------------------------------------------------------------------- command
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    model = _model("spatiotemporal")
    model.save_pretrained(root / "model")
    PROC.save_pretrained(root / "model")
    clip = np.concatenate([_clip(0), _clip(1)])  # 16 frames: stride 2 fits without looping
    write_video(root / "clip.mp4", clip)
    return root


def test_command_end_to_end(saved, tmp_path, capsys):
    video, model = str(saved / "clip.mp4"), str(saved / "model")
    out = tmp_path / "att.png"
    gif = tmp_path / "att.gif"
    assert cli(["explain", video, "--model", model, "--out", str(out), "--gif", str(gif), "--topk", "3"]) == 0
    stdout, _ = capsys.readouterr()
    lines = stdout.splitlines()
    assert len(lines) == 3 and all(re.fullmatch(r"\d\.\d{4}  (left|right|up)", line) for line in lines)
    assert cli(["predict", video, "--model", model, "--topk", "3"]) == 0
    assert capsys.readouterr()[0].splitlines() == lines  # the same clip and labels as `vivit predict`
    with Image.open(out) as image:
        assert image.format == "PNG"
    with Image.open(gif) as image:
        assert image.n_frames == 8

    before = out.read_bytes()
    assert cli(["explain", video, "--model", model, "--out", str(out)]) == 2  # a usage error
    _, stderr = capsys.readouterr()
    assert stderr.count("\n") == 1 and "--out" in stderr and "found one" in stderr and "--overwrite" in stderr
    assert out.read_bytes() == before
    assert cli(["explain", video, "--model", model, "--out", str(out), "--overwrite", "--stride", "1"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--topk", "0"], "--topk: expected an integer >= 1, got 0"),
        (["--out", "att.jpg"], "--out: expected a .png file name, got 'att.jpg'"),
        (["--gif", "att.png"], "--gif: expected a .gif file name, got 'att.png'"),
        (["--num-frames", "4"], "--num-frames: expected the model's 8 frames per clip, got 4"),
        (["--out", "."], "--out: expected a .png file name, got '.'"),
    ],
)
def test_command_errors_are_one_line(saved, tmp_path, capsys, extra, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(["explain", str(saved / "clip.mp4"), "--model", str(saved / "model"), *extra]) == 2
    _, stderr = capsys.readouterr()
    assert stderr.count("\n") == 1 and message in stderr
    assert list(tmp_path.iterdir()) == []


def test_command_refuses_a_directory_as_output(saved, tmp_path, capsys):
    (tmp_path / "a.png").mkdir()
    argv = ["explain", str(saved / "clip.mp4"), "--model", str(saved / "model"), "--out", str(tmp_path / "a.png")]
    assert cli([*argv, "--overwrite"]) == 2
    assert "found a directory" in capsys.readouterr()[1]


def test_explain_video_reads_like_predict(saved):
    model = VivitForVideoClassification.from_pretrained(saved / "model").eval()
    maps = explain_video(model, PROC, saved / "clip.mp4", stride=2)
    assert maps.frames.shape == (8, 32, 32, 3)
