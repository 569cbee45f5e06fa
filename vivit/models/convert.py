"""`vivit convert SRC DST`: a scenic (Flax) ViViT checkpoint -> a Hugging Face directory, without JAX.

    vivit convert checkpoint_90000 vivit-b-16x2-k400/ [--num-frames 32]

SRC is the msgpack file flax's checkpointing writes (arrays are msgpack extension type 1 holding the packed tuple
(shape, dtype name, C-order bytes); arrays over 1 GiB are split into `__msgpack_chunked_array__` dicts).
DST receives config.json + model.safetensors: Model 1 (scenic's `ViViT`, spacetime attention) in Hugging Face's
classic key names, Model 2 (scenic's `SpaceTimeViViT`, factorised encoder) in this library's key scheme.

Scenic -> HF (reference doc "Scenic (Flax) checkpoint -> HF names"): `embedding/kernel` (t, h, w, C, D) -> Conv3d
(D, C, t, h, w); attention `{query,key,value}/kernel` (D, heads, hd) -> (D, D) transposed, `out/kernel`
(heads, hd, D) -> (D, D) transposed; Dense kernels transposed; `LayerNorm_0/1` -> layernorm_before/after,
`scale` -> weight; `output_projection` -> classifier. Flax's GELU is the tanh approximation and its LayerNorm eps
1e-6, so the config says hidden_act "gelu_fast" and layer_norm_eps 1e-6.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path

import msgpack
import numpy as np
import torch

_EXT_NDARRAY, _EXT_COMPLEX, _EXT_NPSCALAR = 1, 2, 3


# ---------------------------------------------------------------------------------------------------------------------
# reading flax msgpack


def _array_from_bytes(data: bytes) -> torch.Tensor:
    shape, dtype, buffer = msgpack.unpackb(data, raw=False)
    if isinstance(dtype, bytes):
        dtype = dtype.decode()
    if dtype == "bfloat16":  # numpy has no bfloat16: reinterpret the bits in torch
        flat = torch.frombuffer(bytearray(buffer), dtype=torch.int16).view(torch.bfloat16).float()
        return flat.reshape(shape)
    return torch.from_numpy(np.frombuffer(buffer, dtype=np.dtype(dtype)).reshape(shape).copy())


def _ext_hook(code: int, data: bytes):
    if code in (_EXT_NDARRAY, _EXT_NPSCALAR):
        return _array_from_bytes(data)
    if code == _EXT_COMPLEX:
        real, imag = msgpack.unpackb(data)
        return complex(real, imag)
    return msgpack.ExtType(code, data)


def _unchunk(tree):
    if isinstance(tree, dict):
        if tree.get("__msgpack_chunked_array__"):
            shape = [tree["shape"][str(i)] for i in range(len(tree["shape"]))]
            chunks = [tree["chunks"][str(i)].reshape(-1) for i in range(len(tree["chunks"]))]
            return torch.cat(chunks).reshape(shape)
        return {k: _unchunk(v) for k, v in tree.items()}
    return tree


def read_flax_msgpack(path: str | os.PathLike) -> dict:
    """The whole checkpoint as nested dicts of torch tensors."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        tree = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except (ValueError, msgpack.exceptions.UnpackException) as e:  # msgpack's messages do not say which file
        raise ValueError(f"{path}: not a flax msgpack checkpoint ({e})") from e
    if not isinstance(tree, dict):
        raise ValueError(f"{path}: not a flax checkpoint (top level is {type(tree).__name__}, expected a dict)")
    return _unchunk(tree)


def scenic_params(tree: dict) -> dict:
    """The model parameters inside a scenic train state: optimizer/target (older scenic), params, or the root."""
    if "optimizer" in tree and isinstance(tree["optimizer"], dict) and "target" in tree["optimizer"]:
        tree = tree["optimizer"]["target"]
    while isinstance(tree, dict) and ("params" in tree or "target" in tree) and "embedding" not in tree:
        tree = tree.get("params", tree.get("target"))
    if not isinstance(tree, dict) or "embedding" not in tree:
        raise ValueError(
            "checkpoint: no ViViT parameters found (expected optimizer/target/embedding or params/embedding)"
        )
    return tree


# ---------------------------------------------------------------------------------------------------------------------
# scenic -> HF names


def _dense(node: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return node["kernel"].T.contiguous(), node["bias"]


def _layer_norm(node: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return node["scale"], node["bias"]


def _encoder_block(node: dict, prefix: str, out: dict) -> None:
    if "MultiHeadDotProductAttention_0" not in node:
        found = sorted(node)
        raise ValueError(f"{prefix}: only spacetime / factorised-encoder blocks convert; this block has {found}")
    attention = node["MultiHeadDotProductAttention_0"]
    for part in ("query", "key", "value"):
        kernel, bias = attention[part]["kernel"], attention[part]["bias"]  # (D, heads, hd), (heads, hd)
        out[f"{prefix}attention.attention.{part}.weight"] = kernel.reshape(kernel.shape[0], -1).T.contiguous()
        out[f"{prefix}attention.attention.{part}.bias"] = bias.reshape(-1)
    kernel = attention["out"]["kernel"]  # (heads, hd, D)
    out[f"{prefix}attention.output.dense.weight"] = kernel.reshape(-1, kernel.shape[-1]).T.contiguous()
    out[f"{prefix}attention.output.dense.bias"] = attention["out"]["bias"]
    for src, dst in (("LayerNorm_0", "layernorm_before"), ("LayerNorm_1", "layernorm_after")):
        out[f"{prefix}{dst}.weight"], out[f"{prefix}{dst}.bias"] = _layer_norm(node[src])
    mlp = node["MlpBlock_0"]
    out[f"{prefix}intermediate.dense.weight"], out[f"{prefix}intermediate.dense.bias"] = _dense(mlp["Dense_0"])
    out[f"{prefix}output.dense.weight"], out[f"{prefix}output.dense.bias"] = _dense(mlp["Dense_1"])


def _encoder(node: dict, prefix: str, norm: str, out: dict) -> int:
    """Blocks and final norm of one scenic `Encoder`; returns its depth."""
    blocks = sorted((int(m.group(1)), k) for k in node if (m := re.fullmatch(r"encoderblock_(\d+)", k)))
    if [i for i, _ in blocks] != list(range(len(blocks))):
        raise ValueError(f"{prefix}: encoder blocks are not numbered 0..n-1: {[k for _, k in blocks]}")
    for i, key in blocks:
        _encoder_block(node[key], f"{prefix}encoder.layer.{i}.", out)
    out[f"{norm}.weight"], out[f"{norm}.bias"] = _layer_norm(node["encoder_norm"])
    return len(blocks)


def convert_params(params: dict, *, num_frames: int | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """Scenic parameter tree -> (VivitConfig fields, state dict in the checkpoint names of this library / HF)."""
    kernel = params["embedding"]["kernel"]
    if kernel.dim() != 5:
        raise ValueError(
            f"embedding/kernel: expected a 3-D tubelet kernel (t, h, w, C, D), got shape {tuple(kernel.shape)} "
            "(uniform frame sampling checkpoints are not supported)"
        )
    t, h, w, C, D = kernel.shape
    if "pre_logits" in params and params["pre_logits"]:
        raise ValueError("pre_logits: checkpoints with a representation layer (representation_size) are not supported")
    out: dict[str, torch.Tensor] = {
        "vivit.embeddings.patch_embeddings.projection.weight": kernel.permute(4, 3, 0, 1, 2).contiguous(),
        "vivit.embeddings.patch_embeddings.projection.bias": params["embedding"]["bias"],
    }
    out["classifier.weight"], out["classifier.bias"] = _dense(params["output_projection"])
    config = dict(
        tubelet_size=[t, h, w],
        num_channels=C,
        hidden_size=D,
        hidden_act="gelu_fast",  # flax.linen.gelu defaults to the tanh approximation
        layer_norm_eps=1e-6,  # flax.linen.LayerNorm's default
        qkv_bias=True,
        num_labels=out["classifier.weight"].shape[0],
    )

    if "SpatialTransformer" in params:  # Model 2, factorised encoder
        spatial = params["SpatialTransformer"]
        layers = _encoder(spatial, "vivit.", "vivit.layernorm", out)
        pos = spatial["posembed_input"]["pos_embedding"]  # (1, [1 +] S, D)
        has_cls = "cls_SpatialTransformer" in params
        if has_cls:
            out["vivit.embeddings.cls_token"] = params["cls_SpatialTransformer"]
        out["vivit.embeddings.position_embeddings"] = pos
        side = math.isqrt(pos.shape[1] - has_cls)
        if side * side != pos.shape[1] - has_cls:
            raise ValueError(
                f"SpatialTransformer/posembed_input: {pos.shape[1] - has_cls} patches is not a square grid"
            )
        if "TemporalTransformer" in params:
            temporal = params["TemporalTransformer"]
            temporal_layers = _encoder(temporal, "vivit.temporal_", "vivit.temporal_layernorm", out)
            tpos = temporal["posembed_input"]["pos_embedding"]
            if "cls_TemporalTransformer" in params:
                out["vivit.temporal_embeddings.cls_token"] = params["cls_TemporalTransformer"]
            out["vivit.temporal_embeddings.position_embeddings"] = tpos
            frames = (tpos.shape[1] - ("cls_TemporalTransformer" in params)) * t
        else:  # scenic's spatial_only_baseline: the per-frame vectors are averaged
            temporal_layers = 0
            if num_frames is None:
                raise ValueError("--num-frames: a factorised encoder without a temporal transformer needs it")
            frames = num_frames
        if num_frames is not None and num_frames != frames:
            raise ValueError(f"--num-frames: the checkpoint's temporal position embedding is for {frames} frames")
        config.update(
            variant="factorized_encoder",
            num_temporal_layers=temporal_layers,
            num_frames=frames,
            image_size=side * h,
            pooling="cls" if has_cls else "mean",
        )
    else:  # Model 1, joint space-time attention
        if "Transformer" not in params:
            raise ValueError(f"checkpoint: expected Transformer or SpatialTransformer, found {sorted(params)}")
        encoder = params["Transformer"]
        layers = _encoder(encoder, "vivit.", "vivit.layernorm", out)
        pos = encoder["posembed_input"]["pos_embedding"]
        has_cls = "cls" in params
        if has_cls:
            out["vivit.embeddings.cls_token"] = params["cls"]
        out["vivit.embeddings.position_embeddings"] = pos
        frames = 32 if num_frames is None else num_frames
        tokens = pos.shape[1] - has_cls
        if frames % t or tokens % (frames // t):
            raise ValueError(
                f"--num-frames: {frames} frames in {t}-frame tubelets do not divide the checkpoint's {tokens} tokens"
            )
        side = math.isqrt(tokens // (frames // t))
        if side * side * (frames // t) != tokens:
            raise ValueError(f"--num-frames {frames}: leaves {tokens // (frames // t)} patches per frame, not a square")
        config.update(variant="spatiotemporal", num_frames=frames, image_size=side * h)
        config["pooling"] = "cls" if has_cls else "mean"
    first = (params.get("SpatialTransformer") or params["Transformer"])["encoderblock_0"]
    config.update(
        num_hidden_layers=layers,
        num_attention_heads=first["MultiHeadDotProductAttention_0"]["query"]["kernel"].shape[1],  # (D, heads, hd)
        intermediate_size=out["vivit.encoder.layer.0.intermediate.dense.weight"].shape[0],
    )
    return config, {k: v.float().contiguous() for k, v in out.items()}


def _occupied(dst: Path) -> bool:
    return dst.exists() and (not dst.is_dir() or any(dst.iterdir()))


def check_load(directory: Path) -> None:
    """Every key present and used, every shape right (transformers' loader only warns about these)."""
    from vivit.models.modeling import VivitForVideoClassification

    _, info = VivitForVideoClassification.from_pretrained(directory, output_loading_info=True)
    problems = {k: sorted(v) for k, v in info.items() if k != "error_msgs" and v}
    if problems or info.get("error_msgs"):
        raise RuntimeError(f"the converted checkpoint does not load cleanly: {problems or info['error_msgs']}")


def convert(
    src: str | os.PathLike, dst: str | os.PathLike, *, num_frames: int | None = None, overwrite: bool = False
) -> Path:
    """Read the scenic checkpoint `src`, write config.json + model.safetensors into a temporary sibling of `dst`,
    check that it loads, and only then move it to `dst` (an existing, non-empty `dst` only with overwrite=True)."""
    import shutil

    from safetensors.torch import save_file

    from vivit.models.configuration import VivitConfig
    from vivit.training.checkpointing import fsync_tree, replace_directory

    dst = Path(dst)
    if _occupied(dst) and not overwrite:
        raise FileExistsError(f"{dst}: expected a new or empty output directory, found one in use (--overwrite)")
    fields, state = convert_params(scenic_params(read_flax_msgpack(src)), num_frames=num_frames)
    config = VivitConfig(**fields)
    config.architectures = ["VivitForVideoClassification"]
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        config.save_pretrained(tmp)
        save_file(state, tmp / "model.safetensors", metadata={"format": "pt"})
        check_load(tmp)
        fsync_tree(tmp)
        if dst.is_dir() and not any(dst.iterdir()):
            dst.rmdir()
        replace_directory(tmp, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


def _found(path: Path) -> str:
    if not path.exists():
        return "nothing there"
    if path.is_dir():
        return "a directory with files" if any(path.iterdir()) else "an empty directory"
    return "a file"


def main(argv: list[str] | None = None) -> int:
    """The command; errors propagate to `vivit.cli.run_command`, which prints them as one line."""
    from vivit.cli import args as cli_args
    from vivit.cli import describe

    parser = argparse.ArgumentParser(
        prog="vivit convert",
        description="Convert a scenic (Flax msgpack) ViViT checkpoint to a Hugging Face directory.",
    )
    parser.add_argument("src", type=cli_args.existing_file, help="the scenic checkpoint file (e.g. checkpoint_90000)")
    parser.add_argument("dst", type=cli_args.output_dir, help="output directory (config.json + model.safetensors)")
    parser.add_argument(
        "--num-frames",
        type=cli_args.positive_int,
        default=None,
        help="frames per clip; Model 1 checkpoints do not record it (default 32); Model 2's is read from the weights",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    src, dst = Path(args.src), Path(args.dst)
    if _occupied(dst) and not args.overwrite:
        raise cli_args.UsageError(
            f"DST {dst}: expected a new or empty directory, found {_found(dst)} (replace it with --overwrite)"
        )
    try:
        dst = convert(src, dst, num_frames=args.num_frames, overwrite=args.overwrite)
    except (ValueError, RuntimeError, KeyError) as e:  # about the checkpoint's content: the message names the file
        message = describe(e)
        raise RuntimeError(message if str(src) in message else f"{src}: {message}") from e
    config = json.loads((dst / "config.json").read_text())
    summary = {k: config[k] for k in ("variant", "num_frames", "image_size", "tubelet_size", "num_hidden_layers")}
    print(json.dumps({"output": str(dst), **summary}))
    return 0


if __name__ == "__main__":
    from vivit.cli import run_command

    sys.exit(run_command("convert", main))
