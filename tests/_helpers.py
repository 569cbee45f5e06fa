"""Small builders shared by the model and video tests (imported as `_helpers`: pytest puts tests/ on sys.path)."""

import numpy as np
import torch

# Spelled out rather than taken from vivit.models.configuration, so that a variant dropped there fails the tests.
VARIANTS = ["spatiotemporal", "factorized_encoder", "factorized_self_attention", "factorized_dot_product"]

# A tiny model on odd sizes: 5 frames (2 tubelets + 1 dropped frame), 9x13 pixels (2x3 patches + remainders).
ODD_SMALL = dict(
    image_size=[9, 13],
    num_frames=5,
    tubelet_size=[2, 4, 4],
    hidden_size=20,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=23,
    num_labels=3,
    num_temporal_layers=1,
)

# The trainer tests' model: 16x16 frames, 4 frames, 8x8x2 tubelets: 8 tokens + CLS; one block. Seconds per run.
TINY = dict(
    image_size=16,
    num_frames=4,
    tubelet_size=[2, 8, 8],
    num_channels=3,
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=64,
)


def randomize(model: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    """Non-trivial values in every parameter (initialisers leave CLS, positions and biases at zero); returns model."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    return model


def random_frames(seed: int, num_frames: int, height: int = 24, width: int = 40) -> np.ndarray:
    """A random uint8 RGB video (num_frames, height, width, 3), reproducible from `seed`."""
    return np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)


def classic_name(key: str) -> str:
    """HF 5.x in-memory parameter name -> the classic on-disk name (`layers.0.attention.q_proj` ->
    `encoder.layer.0.attention.attention.query`), written out here independently of transformers' mapping."""
    for new, old in (
        ("layers.", "encoder.layer."),
        ("attention.q_proj", "attention.attention.query"),
        ("attention.k_proj", "attention.attention.key"),
        ("attention.v_proj", "attention.attention.value"),
        ("attention.o_proj", "attention.output.dense"),
        ("mlp.fc1", "intermediate.dense"),
        ("mlp.fc2", "output.dense"),
    ):
        key = key.replace(new, old)
    return key


def classic_state(model: torch.nn.Module) -> dict:
    return {classic_name(k): v for k, v in model.state_dict().items()}


def decode_all(path) -> np.ndarray:
    """Every frame of a video file in decode order, as (T, H, W, 3) uint8: what the tests compare readers against."""
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
