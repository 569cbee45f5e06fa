"""ViViT models: VivitModel and VivitForVideoClassification, all four variants of the paper, as transformers models.

Model 1 ("spatiotemporal") is Hugging Face's model: the same parameter names (transformers 5.x), outputs and files.
The layout of each variant, with T' x S tubelet tokens (T' temporal indices, S = H' * W' spatial positions):
  1 spatiotemporal            [CLS] + T'*S tokens, one encoder of joint-attention blocks.
  2 factorized_encoder        per temporal index [CLS] + S tokens through a spatial encoder (weights shared over
                              time, spatial position embedding shared over time); the T' per-index vectors, with a
                              temporal [CLS] and temporal position embedding, through a temporal encoder
                              (`temporal_embeddings`, `temporal_layers`, `temporal_layernorm`).
  3 factorized_self_attention T'*S tokens; blocks of spatial attention, temporal attention, MLP. Mean pooling.
  4 factorized_dot_product    T'*S tokens; half of each block's heads attend over space, half over time. Mean pooling.

Outputs by variant (B batch, H heads, S' = 1 + S with a CLS token, else S):
  last_hidden_state  Models 1, 3, 4: (B, [1 +] T'*S, D). Model 2: (B, [1 +] T', D) from the temporal encoder, or the
                     per-index vectors (B, T', D) when num_temporal_layers == 0.
  hidden_states      embeddings output, then every block's output. Model 2: spatial ones as (B, T', S', D), then the
                     temporal embeddings output and every temporal block's output (B, [1 +] T', D).
  attentions         Model 1: (B, H, L, L) per block. Model 2: (B, T', H, S', S') per spatial block, then (B, H, 1 + T',
                     1 + T') per temporal block. Model 3: (B, T', H, S, S) and (B, S, H, T', T') per block, in the
                     block's order. Model 4: the same pair per block, each over H/2 heads.
  pooler_output      tanh(Linear(pooled)) with the pooler; the pooled vector itself when built without one.
frame_mask (B, frames): a temporal index is real when any of its frames is; padded indices are masked as attention keys
(a padded frame's spatial attention gives zeros) and left out of mean pooling.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput

from vivit.models import _autoload, checkpoint_files, config_checks, dispatch, weight_names
from vivit.models.configuration import VivitConfig
from vivit.models.layers import VivitLayer, VivitTubeletEmbeddings, build_layers, must_call, run_layers


# ---------------------------------------------------------------------------------------------------------- embeddings
def resize_grid(pos: torch.Tensor, old: tuple[int, int, int], new: tuple[int, int, int]) -> torch.Tensor:
    """Position embeddings (T*H*W, D) on a (T, H, W) grid resized to `new`: bicubic in space, linear in time."""
    if tuple(old) == tuple(new):
        return pos
    (t, h, w), (t2, h2, w2) = old, new
    D = pos.shape[-1]
    x = pos.float().reshape(t, h, w, D)
    if (h, w) != (h2, w2):
        x = F.interpolate(x.permute(0, 3, 1, 2), size=(h2, w2), mode="bicubic", align_corners=False)
        x = x.permute(0, 2, 3, 1)  # (t, h2, w2, D)
    if t != t2:
        x = x.permute(1, 2, 3, 0).reshape(1, h2 * w2 * D, t)
        x = F.interpolate(x, size=t2, mode="linear", align_corners=False)
        x = x.reshape(h2, w2, D, t2).permute(3, 0, 1, 2)
    return x.reshape(t2 * h2 * w2, D).to(pos.dtype)


class VivitEmbeddings(nn.Module):
    """Tubelet embedding, CLS token and position embedding of the first encoder.

    position_embeddings (1, [1 +] n, D) with n = T'*S (Models 1, 3, 4) or n = S shared over time (Model 2).
    """

    def __init__(self, config: VivitConfig):
        super().__init__()
        T, Hp, Wp = config.grid
        self.per_frame = config.variant == "factorized_encoder"
        self.grid = (1, Hp, Wp) if self.per_frame else (T, Hp, Wp)
        self.num_prefix = 1 if config.use_cls_token else 0
        n = self.grid[0] * Hp * Wp
        # registration order = Hugging Face's, so that named_parameters() lists the same names in the same order
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size)) if self.num_prefix else None
        self.patch_embeddings = VivitTubeletEmbeddings(config)
        self.position_embeddings = nn.Parameter(torch.zeros(1, self.num_prefix + n, config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.config = config  # read at call time, so that changing config.backend takes effect

    def position_table(self, grid: tuple[int, int, int]) -> torch.Tensor:
        """The (prefix + n, D) position table for an input of `grid` = (T', H', W') tubelets, resized if needed."""
        pos = self.position_embeddings[0]
        new = (1, grid[1], grid[2]) if self.per_frame else grid
        if tuple(new) == self.grid:
            return pos
        return torch.cat([pos[: self.num_prefix], resize_grid(pos[self.num_prefix :], self.grid, new)])

    def forward(self, pixel_values: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        cls = None if self.cls_token is None else self.cls_token.view(-1)
        pos = self.position_table(grid)
        if must_call(self.config.backend, self, ("patch_embeddings", "patch_embeddings.projection")):
            x = self._place(self.patch_embeddings(pixel_values), pos, cls, grid)
        else:
            proj = self.patch_embeddings.projection
            x = dispatch.patch_embed(
                pixel_values,
                proj.weight,
                proj.bias,
                pos,
                cls,
                per_frame_cls=self.per_frame and cls is not None,
                backend=self.config.backend,
            )
        return self.dropout(x)

    def _place(self, tokens, pos, cls, grid):
        """The module path's tokens (B, T'*S, D) with CLS row(s) and positions, laid out as dispatch.patch_embed's."""
        B, N, D = tokens.shape
        T = grid[0]
        if cls is None:
            return (tokens.view(B, T, -1, D) + pos).view(B, N, D) if pos.shape[0] != N else tokens + pos
        if self.per_frame:
            out = torch.cat([cls.view(1, 1, 1, D).expand(B, T, 1, D), tokens.view(B, T, -1, D)], dim=2)
        else:
            out = torch.cat([cls.view(1, 1, D).expand(B, 1, D), tokens], dim=1)
        return out + pos


class VivitTemporalEmbeddings(nn.Module):
    """Model 2: the temporal encoder's CLS token and 1-D position embedding over the T' per-frame vectors."""

    def __init__(self, config: VivitConfig):
        super().__init__()
        self.num_prefix = 1 if config.use_cls_token else 0
        self.num_frames = config.grid[0]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size)) if self.num_prefix else None
        self.position_embeddings = nn.Parameter(torch.zeros(1, self.num_prefix + self.num_frames, config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        pos = self.position_embeddings[0]
        if T != self.num_frames:
            pos = torch.cat(
                [pos[: self.num_prefix], resize_grid(pos[self.num_prefix :], (self.num_frames, 1, 1), (T, 1, 1))]
            )
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(B, 1, D), x], dim=1)
        return self.dropout(x + pos)


class VivitPooler(nn.Module):
    """HF's pooler on the base model: tanh(Linear(pooled vector))."""

    def __init__(self, config: VivitConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.pooler_output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x))


# ---------------------------------------------------------------------------------------------------------- helpers
def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over dim 1 of (B, L, D), counting only rows where mask (B, L) is True."""
    if mask is None:
        return x.mean(dim=1)
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def values_checkable(*tensors: torch.Tensor | None) -> bool:
    """Whether forward may read input values to check them (NaN/Inf pixels, empty frame_mask rows, label range).

    Only for plain CPU tensors in eager mode: on an accelerator reading a value back is a host sync (it stalls the
    launch queue every step), and under torch.compile / export, CUDA-graph capture, jit tracing or scripting, fx
    tracing, vmap, fake or meta tensors there are no values to read. Elsewhere the checks are skipped, not emulated.
    """
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return False
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    for tensor in tensors:
        if tensor is None:
            continue
        # FakeTensor, DTensor and other subclasses are not `torch.Tensor` itself; vmap wraps plain tensors.
        if type(tensor) not in (torch.Tensor, nn.Parameter) or tensor.device.type != "cpu":
            return False
        if torch._C._functorch.is_functorch_wrapped_tensor(tensor):
            return False
    return True


def _first_index(flags: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in flags.nonzero()[0])


class VivitPreTrainedModel(PreTrainedModel):
    """transformers plumbing shared by the ViViT models; initialisation as Hugging Face's: normal(0,
    initializer_range) weights, zero biases, LayerNorm 1/0, CLS tokens and position embeddings 0."""

    config: VivitConfig
    config_class = VivitConfig
    base_model_prefix = "vivit"
    main_input_name = "pixel_values"
    input_modalities = ("video",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["VivitEmbeddings", "VivitTemporalEmbeddings", "VivitLayer"]
    # transformers' loaders pass attn_implementation="sdpa" by default: accepted, while `backend` picks the code
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # transformers.initialization skips tensors loaded from a checkpoint; every parameter has a rule here
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv3d)):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, (VivitEmbeddings, VivitTemporalEmbeddings)):
            init.zeros_(module.position_embeddings)
            if module.cls_token is not None:
                init.zeros_(module.cls_token)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """transformers' from_pretrained (every argument of it), for any of the four variants. The weight files are
        checked first (`vivit.models.checkpoint_files`): a shard index may name only files inside the checkpoint
        directory, safetensors headers must be well formed."""
        path = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        checkpoint_files.check_pretrained(path, **kwargs)
        try:
            loaded = super().from_pretrained(*args, **kwargs)
        except TypeError as e:
            # a keyword that is neither a loading argument nor a config field reaches the model's __init__
            unknown = re.search(r"__init__\(\) got an unexpected keyword argument '(\w+)'", str(e))
            if unknown is None:
                raise
            config_checks.check_keys(cls.config_class, [unknown.group(1)])
            raise
        except RuntimeError as e:
            if "ignore_mismatched_sizes" not in str(e):
                raise
            # transformers logs the mismatched tensors and raises a message pointing at that log: one line instead
            raise checkpoint_files.CheckpointShapeError(
                f"{path}: tensor shapes in the checkpoint do not match the config (the load report above lists "
                "them); pass ignore_mismatched_sizes=True to initialise those tensors anew"
            ) from None
        weight_names.forget_legacy_load(loaded[0] if isinstance(loaded, tuple) else loaded)
        return loaded

    def post_init(self) -> None:
        super().post_init()
        # the names strict-backend errors give for a wrapped module (e.g. "vivit.layers.0.attention.q_proj")
        for name, module in self.named_modules():
            if isinstance(module, (VivitLayer, VivitEmbeddings)):
                module._vivit_path = name

    def _resolve_flags(self, output_attentions, output_hidden_states, return_dict):
        c = self.config
        return (
            c.output_attentions if output_attentions is None else output_attentions,
            c.output_hidden_states if output_hidden_states is None else output_hidden_states,
            c.return_dict if return_dict is None else return_dict,
        )


# ---------------------------------------------------------------------------------------------------------- models
# The attention of the (first) encoder's blocks: Model 2's spatial encoder attends jointly within each frame.
_BLOCK_KIND = {
    "spatiotemporal": "joint",
    "factorized_encoder": "joint",
    "factorized_self_attention": "factorized",
    "factorized_dot_product": "dot_product",
}


class VivitModel(VivitPreTrainedModel):
    """The ViViT encoder: pixel_values (B, frames, channels, H, W) -> tokens, pooled vector (optional pooler)."""

    def __init__(self, config: VivitConfig, add_pooling_layer: bool = True):
        config.check_buildable()
        super().__init__(config)
        self.embeddings = VivitEmbeddings(config)
        self.layers = build_layers(config, config.num_hidden_layers, _BLOCK_KIND[config.variant])
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        if config.variant == "factorized_encoder" and config.num_temporal_layers > 0:
            self.temporal_embeddings = VivitTemporalEmbeddings(config)
            self.temporal_layers = build_layers(config, config.num_temporal_layers, "joint")
            self.temporal_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = VivitPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embeddings

    # ------------------------------------------------------------------------------------------------ input checks
    def _check_input(self, pixel_values, frame_mask, interpolate_pos_encoding) -> tuple[int, int, int]:
        c = self.config
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}")
        if pixel_values.dim() != 5:
            raise ValueError(
                "pixel_values must be 5-D (batch, frames, channels, height, width), got shape "
                f"{tuple(pixel_values.shape)}"
            )
        B, nF, C, H, W = pixel_values.shape
        if C != c.num_channels:
            raise ValueError(
                f"pixel_values must have num_channels={c.num_channels} channels at dim 2 of (batch, frames, channels,"
                f" height, width), got {C} (shape {tuple(pixel_values.shape)})"
            )
        if not pixel_values.is_floating_point():
            raise TypeError(f"pixel_values must be a floating-point tensor, got dtype {pixel_values.dtype}")
        param_dtype = self.embeddings.position_embeddings.dtype
        if pixel_values.dtype != param_dtype and not torch.is_autocast_enabled(pixel_values.device.type):
            raise TypeError(
                f"pixel_values has dtype {pixel_values.dtype} but the model's parameters are {param_dtype}: "
                f"convert the input (pixel_values.to({param_dtype})) or the model"
            )
        expected = (c.num_frames, *c.image_hw)
        if not interpolate_pos_encoding and (nF, H, W) != expected:
            raise ValueError(
                f"pixel_values has (frames, height, width) = {(nF, H, W)} but the model expects {expected}; pass "
                "interpolate_pos_encoding=True to resize the position embeddings"
            )
        t, h, w = c.tubelet_size
        if nF < t or H < h or W < w:
            raise ValueError(
                f"pixel_values (frames, height, width) = {(nF, H, W)} is smaller than one tubelet {(t, h, w)}"
            )
        if frame_mask is not None and not isinstance(frame_mask, torch.Tensor):
            raise TypeError(f"frame_mask must be a torch.Tensor, got {type(frame_mask).__name__}")
        if frame_mask is not None and tuple(frame_mask.shape) != (B, nF):
            raise ValueError(f"frame_mask must have shape (batch, frames) = {(B, nF)}, got {tuple(frame_mask.shape)}")
        grid = nF // t, H // h, W // w
        if values_checkable(pixel_values, frame_mask):
            self._check_values(pixel_values, frame_mask, grid[0] * t)
        return grid

    @staticmethod
    def _check_values(pixel_values: torch.Tensor, frame_mask: torch.Tensor | None, used_frames: int) -> None:
        """NaN/Inf pixels and all-False frame_mask rows (CPU only, see `values_checkable`)."""
        # One reduction first: a finite sum rules out NaN and Inf; only then look for where they are.
        if not bool(pixel_values.detach().sum().isfinite()):
            bad = ~torch.isfinite(pixel_values.detach()).flatten(2).all(2)  # (B, frames)
            if bool(bad.any()):
                row, frame = _first_index(bad)
                raise ValueError(f"pixel_values has NaN or infinite values (batch row {row}, frame {frame})")
        if frame_mask is not None:
            empty = ~frame_mask[:, :used_frames].bool().any(1)
            if bool(empty.any()):
                (row,) = _first_index(empty)
                raise ValueError(
                    f"frame_mask row {row} has no True value among the {used_frames} frames the model reads; every "
                    "clip needs at least one real frame (drop empty clips from the batch)"
                )

    def tubelet_mask(self, frame_mask: torch.Tensor | None, num_tubelets: int) -> torch.Tensor | None:
        """(B, frames) frame mask -> (B, T') mask of temporal indices: real when any of its frames is real."""
        if frame_mask is None:
            return None
        t = self.config.tubelet_size[0]
        return frame_mask[:, : num_tubelets * t].bool().reshape(frame_mask.shape[0], num_tubelets, t).any(-1)

    # ------------------------------------------------------------------------------------------------ forward
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        attention_mask: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        """pixel_values (B, frames, channels, H, W). frame_mask (B, frames): True for real frames; padded frames are
        excluded as attention keys and from mean pooling. attention_mask (B, 1 + tokens), Model 1 only (as HF 5.x):
        1/True for tokens that may be attended. output_attentions / output_hidden_states / return_dict default to
        the config's.

        Refused with a one-line ValueError: NaN or infinite pixel_values (naming the batch row and frame) and a
        frame_mask row with no True value among the frames the model reads. These two checks read values, so they
        run on CPU tensors in eager mode only (`values_checkable`): on a GPU they would add a host sync per step,
        and under torch.compile, export, CUDA-graph capture, tracing or on the meta device they are skipped."""
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        grid = self._check_input(pixel_values, frame_mask, interpolate_pos_encoding)
        if attention_mask is not None and self.config.variant != "spatiotemporal":
            raise ValueError(
                f"attention_mask (per token) is for variant 'spatiotemporal', got variant {self.config.variant!r}; "
                "use frame_mask"
            )
        tmask = self.tubelet_mask(frame_mask, grid[0])
        if self.config.variant == "factorized_encoder":
            last, pooled, hidden_states, attentions = self._forward_factorized_encoder(
                pixel_values, grid, tmask, output_hidden_states, output_attentions
            )
        else:
            last, pooled, hidden_states, attentions = self._forward_single_encoder(
                pixel_values, grid, tmask, attention_mask, output_hidden_states, output_attentions
            )
        out = BaseModelOutputWithPooling(
            last_hidden_state=last,
            pooler_output=self.pooler(pooled) if self.pooler is not None else pooled,
            hidden_states=hidden_states if output_hidden_states else None,
            attentions=attentions if output_attentions else None,
        )
        return out if return_dict else out.to_tuple()

    def _forward_single_encoder(
        self, pixel_values, grid, tmask, attention_mask, output_hidden_states, output_attentions
    ):
        """Models 1, 3, 4: one encoder over (CLS +) T'*S tokens."""
        T, Hp, Wp = grid
        S = Hp * Wp
        x = self.embeddings(pixel_values, grid)
        B = x.shape[0]
        token_mask = None if tmask is None else tmask.repeat_interleave(S, dim=1)  # (B, T'*S)
        key_mask = token_mask
        if self.embeddings.num_prefix and token_mask is not None:
            key_mask = torch.cat([token_mask.new_ones(B, 1), token_mask], dim=1)
        if attention_mask is not None:
            if tuple(attention_mask.shape) != (B, x.shape[1]):
                raise ValueError(
                    f"attention_mask must have shape (batch, tokens) = {(B, x.shape[1])}, "
                    f"got {tuple(attention_mask.shape)}"
                )
            key_mask = attention_mask.bool() if key_mask is None else key_mask & attention_mask.bool()
        x, hidden_states, attentions = run_layers(
            self.layers, x, (T, S), key_mask, tmask, output_hidden_states, output_attentions
        )
        last = self.layernorm(x)
        return last, self.pool(last, tmask), hidden_states, attentions

    def _forward_factorized_encoder(self, pixel_values, grid, tmask, output_hidden_states, output_attentions):
        """Model 2: spatial encoder per temporal index, then a temporal encoder over the per-index vectors."""
        T, Hp, Wp = grid
        x = self.embeddings(pixel_values, grid)  # (B, T', 1 + S, D), or (B, T'*S, D) without CLS
        B, D = x.shape[0], x.shape[-1]
        x = x.reshape(B * T, -1, D)
        x, hidden_states, attentions = run_layers(
            self.layers,
            x,
            (1, x.shape[1]),
            None,
            None,
            output_hidden_states,
            output_attentions,
            state_shape=(B, T, x.shape[1], D),
        )
        attentions = tuple(a.view(B, T, *a.shape[1:]) for a in attentions)
        x = self.layernorm(x)
        frames = (x[:, 0] if self.embeddings.num_prefix else x.mean(dim=1)).view(B, T, D)
        if self.config.num_temporal_layers == 0:
            return frames, masked_mean(frames, tmask), hidden_states, attentions
        x = self.temporal_embeddings(frames)
        key_mask = tmask
        if tmask is not None and self.temporal_embeddings.num_prefix:
            key_mask = torch.cat([tmask.new_ones(B, 1), tmask], dim=1)
        x, t_hidden, t_attentions = run_layers(
            self.temporal_layers, x, (T, 1), key_mask, None, output_hidden_states, output_attentions
        )
        last = self.temporal_layernorm(x)
        return last, self.pool(last, tmask), hidden_states + t_hidden, attentions + t_attentions

    def pool(self, last_hidden_state: torch.Tensor, tmask: torch.Tensor | None) -> torch.Tensor:
        """The vector the classifier reads: the CLS token, or the mean of the real tokens (tmask (B, T') or None)."""
        if self.config.use_cls_token:
            return last_hidden_state[:, 0]
        mask = None
        if tmask is not None:
            mask = tmask.repeat_interleave(last_hidden_state.shape[1] // tmask.shape[1], dim=1)
        return masked_mean(last_hidden_state, mask)

    def forward_features(self, pixel_values, frame_mask=None, interpolate_pos_encoding=False) -> torch.Tensor:
        """timm-style: the final token representations (last_hidden_state)."""
        out = self.forward(
            pixel_values, frame_mask=frame_mask, interpolate_pos_encoding=interpolate_pos_encoding, return_dict=True
        )
        return out.last_hidden_state


class VivitForVideoClassification(VivitPreTrainedModel):
    """ViViT with a linear classifier on the pooled vector (CLS token or mean of tokens)."""

    def __init__(self, config: VivitConfig):
        config.check_buildable()
        super().__init__(config)
        self.vivit = VivitModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.vivit.get_input_embeddings()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        attention_mask: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> ImageClassifierOutput | tuple:
        """As VivitModel.forward; labels (B,) class indices, (B, num_labels) targets for multi-label, or (B,) values
        for regression (see `loss`)."""
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        out = self.vivit(
            pixel_values,
            interpolate_pos_encoding=interpolate_pos_encoding,
            attention_mask=attention_mask,
            frame_mask=frame_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(out.pooler_output)
        loss = self.loss(logits, labels) if labels is not None else None
        result = ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )
        return result if return_dict else result.to_tuple()

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """As HF: MSE when num_labels == 1, cross-entropy for integer labels, BCE-with-logits for multi-label.

        Cross-entropy ignores labels of -100 and averages over the others; a batch whose labels are all -100 has a
        loss of 0 with zero gradients (not NaN). Class indices outside [0, num_labels) are refused (on CPU tensors,
        see `values_checkable`; CUDA's cross-entropy kernel asserts on them itself)."""
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
        num_labels = self.config.num_labels
        if num_labels == 0:
            raise ValueError("labels were given but the model has no classification head (num_labels=0)")
        problem = self.config.problem_type
        if problem is None:
            if self.config.num_labels == 1:
                problem = "regression"
            elif labels.dtype in (torch.long, torch.int, torch.int16, torch.int8, torch.uint8):
                problem = "single_label_classification"
            else:
                problem = "multi_label_classification"
        if problem == "regression":
            if labels.numel() != logits.numel():
                raise ValueError(
                    f"labels for regression must have {logits.numel()} values (logits {tuple(logits.shape)}), got "
                    f"shape {tuple(labels.shape)}"
                )
            if self.config.num_labels == 1:
                return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
            return F.mse_loss(logits, labels.reshape(logits.shape).to(logits.dtype))
        if problem == "single_label_classification":
            return self._cross_entropy(logits.view(-1, num_labels), labels)
        if problem == "multi_label_classification":
            if tuple(labels.shape) != tuple(logits.shape):
                raise ValueError(
                    f"labels for multi-label classification must have the logits' shape {tuple(logits.shape)}, got "
                    f"{tuple(labels.shape)}"
                )
            return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        raise ValueError(f"unknown problem_type {problem!r}")

    def _cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the labels that are not -100; 0 (with zero gradients) when all are."""
        batch, num_labels = logits.shape
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"labels for single-label classification must be integers, got dtype {labels.dtype}")
        if labels.numel() != batch:
            raise ValueError(
                f"labels for single-label classification must have one class index per clip ({batch}), got shape "
                f"{tuple(labels.shape)}"
            )
        labels = labels.reshape(-1).long()
        if values_checkable(labels):
            bad = (labels != -100) & ((labels < 0) | (labels >= num_labels))
            if bool(bad.any()):
                (row,) = _first_index(bad)
                raise ValueError(
                    f"labels: expected class indices in [0, {num_labels}) or -100 (ignored), got {int(labels[row])} "
                    f"(batch row {row})"
                )
        # sum / count rather than reduction="mean", whose 0 / 0 is NaN when every label is ignored
        total = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
        count = (labels != -100).sum().clamp_min(1)
        return total / count.to(total.dtype)

    def forward_features(self, pixel_values, frame_mask=None, interpolate_pos_encoding=False) -> torch.Tensor:
        """timm-style: the final token representations (last_hidden_state)."""
        return self.vivit.forward_features(pixel_values, frame_mask, interpolate_pos_encoding)

    def forward_head(
        self, features: torch.Tensor, frame_mask: torch.Tensor | None = None, pre_logits: bool = False
    ) -> torch.Tensor:
        """timm-style: pool `forward_features` output (frame_mask as given to forward) and classify."""
        tmask = None
        if frame_mask is not None:
            num_tubelets = frame_mask.shape[1] // self.config.tubelet_size[0]
            tmask = self.vivit.tubelet_mask(frame_mask, num_tubelets)
        pooled = self.vivit.pool(features, tmask)
        return pooled if pre_logits else self.classifier(pooled)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_labels: int) -> None:
        """A fresh classifier head for `num_labels` classes (0 = no head: logits are the pooled features)."""
        if not isinstance(num_labels, int) or num_labels < 0:
            raise ValueError(f"num_labels must be an integer >= 0, got {num_labels!r}")
        self.config.num_labels = num_labels
        ref = self.vivit.layernorm.weight
        if num_labels > 0:
            self.classifier = nn.Linear(self.config.hidden_size, num_labels, device=ref.device, dtype=ref.dtype)
            self._init_weights(self.classifier)
        else:
            self.classifier = nn.Identity()


# transformers' model stack is loaded by now: register with its Auto classes and checkpoint conversions (idempotent).
_autoload.ensure_registered()
