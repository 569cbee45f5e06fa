"""`vivit train`: a compact trainer for any ViViT variant, single process or `torchrun` (DDP or FSDP2).

Run with no arguments it trains the default tiny model on the built-in synthetic task (vivit/data/synthetic.py) and
prints, as its last stdout line, one JSON object with the validation accuracy, epochs, seconds and checkpoint path.

Checkpoint layout (`OUTPUT_DIR/checkpoint-<epoch>/`, a new one after every epoch; the previous one is deleted only
once the new one is complete on disk, see vivit/training/checkpointing.py):
    config.json, model.safetensors   a Hugging Face directory: `VivitForVideoClassification.from_pretrained` loads it
                                     (the weights under the in-memory names, which transformers >= 5 reads as is)
    ema/                             the EMA weights as a directory of their own (with --ema-decay)
    trainer_state.json/.safetensors  optimizer, scheduler, EMA shadow weights, the fp16 gradient scaler, epoch, step,
                                     every rank's RNG states, the run's options and its metrics so far (tensors in
                                     safetensors, no pickle)
    COMPLETE                         written last: the checkpoint is whole
Resuming (`--resume OUTPUT_DIR`, or one checkpoint directory) continues bit-identically to an uninterrupted run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from vivit.cli import args as ca
from vivit.data.augment import (
    AUGMENT_RECIPES,
    HorizontalFlip,
    configure_train_set,
    has_own_flip,
    load_flip_label_map,
)
from vivit.data.synthetic import SyntheticMotion
from vivit.models.checkpoint_files import check_safetensors
from vivit.models.configuration import MODEL_TYPES, PRESETS, VARIANTS, VivitConfig
from vivit.models.modeling import VivitForVideoClassification
from vivit.training import checkpointing as ckpt
from vivit.training.checkpointing import CheckpointError, UsageError
from vivit.training.ema import ModelEMA
from vivit.training.mixup import Mixup, soft_cross_entropy
from vivit.training.optim import build_optimizer
from vivit.training.run_log import CURVES, TENSORBOARD_DIR, TrainingLog

logger = logging.getLogger(__name__)

# The default tiny model. `vivit train` with no arguments (4 epochs of 4096 clips) measured 98.2 % validation top-1
# in 230 s on 2 shared CPU cores (load average 3-4; the epochs themselves take ~10 s each on idle cores).
TINY = dict(
    image_size=32,
    num_frames=8,
    tubelet_size=[2, 8, 8],
    num_channels=3,
    hidden_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    intermediate_size=128,
)


# ---------------------------------------------------------------------------------------------------------------------
# command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="vivit train",
        description="Train or fine-tune a ViViT. With no arguments: the tiny model on the built-in synthetic task.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("model")
    g.add_argument(
        "--variant",
        type=ca.choice(VARIANTS),
        default=None,
        metavar="{" + ",".join(VARIANTS) + "}",
        help="ViViT variant (config `variant`); default: the config's own",
    )
    source = g.add_mutually_exclusive_group()
    source.add_argument(
        "--config", type=ca.existing_file, default=None, help="config.json to build the model from (else the tiny one)"
    )
    source.add_argument(
        "--preset",
        type=ca.choice(sorted(PRESETS)),
        default=None,
        metavar="{" + ",".join(sorted(PRESETS)) + "}",
        help="VivitConfig.from_preset name (instead of --config)",
    )
    g.add_argument(
        "--init",
        type=ca.existing_path,
        default=None,
        help="weights to start from: an HF ViViT directory or a run directory (its newest complete checkpoint; the "
        "head is replaced when --num-labels differs) or an "
        "image ViT (HF ViT directory / .safetensors / .bin / timm vit_* state dict) inflated to video",
    )
    g.add_argument("--init-tubelet", default="central", choices=["central", "inflate", "rank_pool"])
    g.add_argument("--init-pos", default="tile", choices=["tile", "resize"])
    g.add_argument("--init-temporal-attention", action="store_true", help="Model 3: temporal MSA from the ViT too")
    g.add_argument("--drop-path", type=ca.probability, default=0.0, help="stochastic depth rate (drop_path_rate)")
    g.add_argument("--gradient-checkpointing", action="store_true")
    g.add_argument(
        "--compile",
        type=ca.compile_backend,
        default=None,
        metavar="BACKEND",
        help="torch.compile the model (e.g. inductor)",
    )

    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        type=ca.data_source,
        default="synthetic",
        help="'synthetic', a class folder (ROOT/CLASS/*.mp4 or ROOT/{train,val}/CLASS/*.mp4), a CSV/TSV list "
        "(path,label[,start,end]), a Kinetics CSV or a Something-Something v2 JSON",
    )
    g.add_argument(
        "--val-data",
        type=ca.existing_path,
        default=None,
        help="the validation set, in any --data form; None: --data's val split, else --val-fraction of --data",
    )
    g.add_argument(
        "--val-fraction",
        type=ca.float_range(0.0, 1.0, low_open=True, high_open=True),
        default=0.1,
        help="share of every class held out for validation when --data has no val split (seeded by --seed)",
    )
    g.add_argument(
        "--root", type=ca.existing_dir, default=None, help="folder of --data's listed videos; None: the list's folder"
    )
    g.add_argument("--val-root", type=ca.existing_dir, default=None, help="folder of --val-data's listed videos")
    g.add_argument(
        "--skip-missing", action="store_true", help="leave out listed videos that do not exist (reports how many)"
    )
    g.add_argument("--num-labels", type=ca.positive_int, default=None, help="classes (default: from the data)")
    g.add_argument("--train-samples", type=ca.positive_int, default=4096, help="synthetic: training clips")
    g.add_argument("--val-samples", type=ca.positive_int, default=512, help="synthetic: validation clips")
    g.add_argument(
        "--eval-views", type=ca.positive_int, default=1, help="temporal views per validation clip (logits averaged)"
    )
    g.add_argument(
        "--workers",
        type=ca.non_negative_int,
        default=None,
        help="DataLoader worker processes; None: the usable cores, at most 8 (0 for synthetic data)",
    )

    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=ca.positive_int, default=4)
    g.add_argument("--batch-size", type=ca.positive_int, default=32, help="per process, per micro-step")
    g.add_argument("--accum-steps", type=ca.positive_int, default=1, help="micro-steps per optimizer step")
    g.add_argument("--lr", type=ca.positive_float, default=2e-3, help="peak learning rate")
    g.add_argument("--min-lr", type=ca.non_negative_float, default=1e-5, help="final learning rate (<= --lr)")
    g.add_argument("--weight-decay", type=ca.non_negative_float, default=0.05)
    g.add_argument("--warmup-steps", type=ca.non_negative_int, default=None, help="default: 5 %% of all steps")
    g.add_argument("--clip-grad", type=ca.non_negative_float, default=1.0, help="max gradient norm (0: off)")
    g.add_argument("--label-smoothing", type=ca.probability, default=0.0)
    g.add_argument("--mixup", type=ca.non_negative_float, default=0.0, help="mixup Beta alpha (0: off)")
    g.add_argument("--cutmix", type=ca.non_negative_float, default=0.0, help="cutmix Beta alpha (0: off)")
    g.add_argument("--mixup-prob", type=ca.unit_interval, default=1.0)
    g.add_argument("--ema-decay", type=ca.probability, default=0.0, help="EMA of the weights (0: off), e.g. 0.999")
    g.add_argument(
        "--layer-decay",
        type=ca.float_range(0.0, 1.0, low_open=True),
        default=None,
        metavar="R",
        help="layer-wise learning-rate decay (e.g. 0.75): embeddings R^(L+1), block i R^(L-i), head 1 (None: off)",
    )
    g.add_argument(
        "--precision",
        type=ca.choice(PRECISIONS),
        default="auto",
        metavar="{" + ",".join(PRECISIONS) + "}",
        help="auto: bf16 autocast on GPU, else fp32; fp16: autocast fp16 with a gradient scaler",
    )
    g.add_argument("--seed", type=ca.int_range(0, 2**32 - 1), default=0)

    g = p.add_argument_group("augmentation")
    g.add_argument(
        "--augment",
        type=ca.choice(AUGMENT_RECIPES),
        default="light",
        metavar="{" + ",".join(AUGMENT_RECIPES) + "}",
        help="light: the data's own training transform (video folders: scale jitter, crop, flip; synthetic: none); "
        "videomae: RandomResizedCrop, flip, RandAugment (n=4, m=7) and RandomErasing (0.25)",
    )
    g.add_argument(
        "--no-flip",
        action="store_true",
        help="never flip clips horizontally (for classes that a mirror image turns into others, e.g. left/right)",
    )
    g.add_argument(
        "--flip-label-map",
        type=ca.existing_file,
        default=None,
        metavar="FILE",
        help='JSON {"class a": "class b", ...} (names or indices, symmetric): a flipped clip of class a is labelled b; '
        "turns flipping on for every --augment recipe and any data",
    )

    g = p.add_argument_group("run")
    g.add_argument("--output-dir", type=ca.output_dir, default="runs/vivit-train")
    g.add_argument(
        "--resume",
        type=ca.existing_dir,
        default=None,
        help="continue a run: its output directory (the newest complete checkpoint) or one checkpoint directory",
    )
    g.add_argument("--overwrite", action="store_true", help="replace a run already in --output-dir")
    g.add_argument("--distributed", default="ddp", choices=["ddp", "fsdp"], help="strategy under torchrun")
    g.add_argument(
        "--device", type=ca.device, default=None, help="default: cuda (this rank's GPU) if available, else cpu"
    )
    g.add_argument(
        "--max-steps", type=ca.positive_int, default=None, help="cap on optimizer steps per epoch (quick checks)"
    )
    g.add_argument(
        "--stop-after-epochs",
        type=ca.positive_int,
        default=None,
        help="end the run after this many epochs while the schedule still spans --epochs (time-sliced jobs: "
        "continue later with --resume)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument(
        "--log",
        default="none",
        choices=["none", "tensorboard"],
        help="also log loss and learning rate per step and validation metrics per epoch to OUTPUT_DIR/tb "
        "(tensorboard: pip install 'vivit[tensorboard]'); OUTPUT_DIR/curves.png is drawn after every epoch either way",
    )
    args = p.parse_args(argv)
    if args.min_lr > args.lr:
        p.error(f"--min-lr: expected <= --lr ({args.lr:g}), got {args.min_lr:g}")
    if args.no_flip and args.flip_label_map:
        p.error(f"--flip-label-map: expected no map with --no-flip, got {args.flip_label_map}")
    if args.init and Path(args.init).is_dir() and ckpt.complete_checkpoints(Path(args.init)):
        args.init = str(ckpt.model_directory(args.init, "--init"))  # a run directory: its newest checkpoint
    return args


# ---------------------------------------------------------------------------------------------------------------------
# distributed set-up


def init_distributed(device: str | None = None) -> tuple[int, int, torch.device]:
    """(rank, world_size, device); joins the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, (dist.get_world_size() if dist.is_initialized() else 1), dev


def wrap_model(model: nn.Module, strategy: str, device: torch.device) -> nn.Module:
    """DDP or FSDP2 (`fully_shard` on every block, then the root) when a process group is up; else the model."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
        # every element of every ModuleList is a transformer block: one all-gather unit each
        for module in list(model.modules()):
            if isinstance(module, nn.ModuleList):
                for block in module:
                    fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    raise ValueError(f"strategy: expected 'ddp' or 'fsdp', got {strategy!r}")


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


@contextlib.contextmanager
def no_grad_sync(model: nn.Module, skip: bool):
    """Skip the gradient all-reduce on accumulation micro-steps (DDP `no_sync`, FSDP2 requires_gradient_sync)."""
    if not skip:
        yield
    elif hasattr(model, "no_sync"):
        with model.no_sync():
            yield
    elif is_sharded(model):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


# ---------------------------------------------------------------------------------------------------------------------
# model and data


def build_config(args: argparse.Namespace, num_labels: int):
    if args.config:
        config = VivitConfig.from_pretrained(args.config)
    elif args.preset:
        config = VivitConfig.from_preset(args.preset)
    else:
        config = VivitConfig(**TINY)
    overrides = dict(num_labels=num_labels, drop_path_rate=args.drop_path)
    if args.variant is not None:  # pooling=None: the variant's own default (CLS for Models 1-2, mean for 3-4)
        overrides.update(variant=args.variant, pooling=None)
    return rebuild_config(config, **overrides)


def rebuild_config(config: VivitConfig, **overrides) -> VivitConfig:
    """A new config from `config`'s fields and `overrides`, checked and typed as one built from scratch (a new
    num_labels drops the old label names; a new variant gives the variant's config class)."""
    fields = config.to_dict()
    if "num_labels" in overrides:
        fields.pop("id2label", None)
        fields.pop("label2id", None)
    return VivitConfig(**{**fields, **overrides})


def build_model(args: argparse.Namespace, num_labels: int) -> nn.Module:
    """The model, from scratch or from --init (HF ViViT directory or image ViT)."""
    init = Path(args.init) if args.init else None
    if init is not None and init.is_dir() and _is_vivit_dir(init):
        # fine-tuning: the body is reused, a head of a different size starts fresh
        model, info = VivitForVideoClassification.from_pretrained(
            init,
            num_labels=num_labels,
            ignore_mismatched_sizes=True,
            drop_path_rate=args.drop_path,
            output_loading_info=True,
        )
        fresh = sorted(key for key, *_ in info["mismatched_keys"]) + sorted(info["missing_keys"])
        if fresh:
            warnings.warn(
                f"--init {init}: re-initialised (size mismatch or not in the checkpoint): {fresh}", stacklevel=2
            )
        return model
    config = build_config(args, num_labels)
    if init is None:
        return VivitForVideoClassification(config)
    from vivit.models.vit_init import init_from_vit, load_vit_state_dict

    # widths, depth, eps and activation come from the image model; frames, crop and tubelets from the config
    state, vit_settings = load_vit_state_dict(init)
    config = rebuild_config(config, **vit_settings)
    model = VivitForVideoClassification(config)
    init_from_vit(
        model,
        state,
        tubelet=args.init_tubelet,
        position=args.init_pos,
        temporal_attention=args.init_temporal_attention,
    )
    return model


def _is_vivit_dir(path: Path) -> bool:
    config = path / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("model_type") in MODEL_TYPES.values()


def build_datasets(args: argparse.Namespace, config_like: dict):
    frames, size, channels = config_like["num_frames"], config_like["image_size"], config_like["num_channels"]
    if isinstance(size, (list, tuple)):
        if size[0] != size[1]:
            raise ValueError(f"--data synthetic: needs square frames, the config has image_size {size}")
        size = size[0]
    if args.data == "synthetic":
        common = dict(num_frames=frames, image_size=size, num_channels=channels, seed=args.seed)
        train = SyntheticMotion(args.train_samples, split="train", **common)
        val = SyntheticMotion(args.val_samples, split="validation", num_views=args.eval_views, **common)
        return train, val, train.class_names
    from vivit.data.spec import open_dataset

    common = dict(num_frames=frames, image_size=size, seed=args.seed, skip_missing=args.skip_missing)
    # with --val-data, --data trains whole (no automatic split)
    fraction = 0.0 if args.val_data else args.val_fraction
    train = open_dataset(args.data, "train", root=args.root, val_fraction=fraction, train=True, **common)
    val = open_dataset(
        args.val_data or args.data,
        "val" if args.val_data is None else None,
        root=args.val_root if args.val_data else args.root,
        val_fraction=args.val_fraction,
        views=f"{args.eval_views}x1",
        class_to_idx=train.class_to_idx,
        **common,
    )
    for flag, dataset in (("--data", train), ("--val-data" if args.val_data else "--data", val)):
        if dataset.missing:
            print(f"{flag} {dataset.source}: skipped {len(dataset.missing)} missing videos", file=sys.stderr)
    return train, val, list(train.classes)


def usable_cores() -> int:
    """The cores this process may run on (its affinity; os.cpu_count() where there is no affinity call)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity call (macOS, Windows)
        return os.cpu_count() or 1


def default_workers() -> int:
    """The usable cores (this process's affinity), at most 8."""
    return min(8, usable_cores())


def main_process_threads(
    cores: int, workers: int, env: Mapping[str, str], device: torch.device
) -> tuple[int | None, str]:
    """(intra-op threads for the main process, why); None: leave torch's count as it is.

    DataLoader workers run one torch thread each (torch sets it in every worker) and decode with one thread
    (vivit.data.video_backend.decoder_threads), while torch's default gives the main process a thread per core: on a
    CPU run the two then fight for the cores (on 2 cores with 2 workers, one step measured 1443 ms against 74 ms with
    fewer main threads). So a CPU run with workers keeps cores - workers threads (at least 1) in the main process.

    Left alone: OMP_NUM_THREADS set (the user's choice, or torchrun's 1 per process when it starts several; a call to
    torch.set_num_threads made before the trainer cannot be told from torch's default, so set the variable to keep a
    count), no workers (the main process has the cores to itself), and a model on a GPU: there the main process mostly
    queues kernels and waits on the device, its thread pool runs little, so torch's default costs the workers little.
    """
    omp = env.get("OMP_NUM_THREADS", "").strip()
    if omp:
        return None, f"OMP_NUM_THREADS={omp} is set"
    if workers <= 0:
        return None, "no DataLoader workers"
    if device.type != "cpu":
        return None, f"the model is on {device.type}"
    threads = max(1, cores - workers)
    return threads, f"usable cores {cores} - DataLoader workers {workers}; OMP_NUM_THREADS overrides"


def set_main_process_threads(workers: int, device: torch.device, stack: contextlib.ExitStack) -> None:
    """Applies main_process_threads (the previous count comes back when `stack` closes) and logs the outcome."""
    before = torch.get_num_threads()
    threads, why = main_process_threads(usable_cores(), workers, os.environ, device)
    if threads is None or threads == before:
        logger.info("main-process intra-op threads: %d (kept: %s)", before, why)
        return
    torch.set_num_threads(threads)
    stack.callback(torch.set_num_threads, before)
    logger.info("main-process intra-op threads: %d (was %d; %s; set back after the run)", threads, before, why)


def make_loader(dataset, *, batch_size: int, train: bool, seed: int, workers: int | None, rank: int, world: int):
    if workers is None:  # synthetic clips are drawn in memory: worker processes do not speed them up
        workers = 0 if isinstance(dataset, SyntheticMotion) else default_workers()
    # a DistributedSampler in every case (world 1 too) so the data order is one function of (seed, epoch)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=train, seed=seed, drop_last=train)
    # Workers start afresh each epoch with seeds drawn from this generator, which train_one_epoch reseeds from
    # (seed, epoch, rank): random transforms in workers are then a function of the epoch, so --resume stays
    # bit-identical (persistent workers would carry their random state across epochs, which no checkpoint holds).
    generator = torch.Generator().manual_seed(seed) if workers > 0 else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=train,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        prefetch_factor=2 if workers > 0 else None,
        generator=generator,
    )


# ---------------------------------------------------------------------------------------------------------------------
# optimisation


def warmup_cosine(optimizer, *, total_steps: int, warmup_steps: int, lr: float, min_lr: float):
    """Linear warm-up from 0 to lr, then cosine decay to min_lr at total_steps."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return (min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))) / lr

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16 only: a dynamic loss scale keeps small gradients from flushing to zero (bf16 has fp32's range)."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def setup_augment(args: argparse.Namespace, train_set, class_names: list[str]):
    """(training set, per-batch augmentation, per-batch flip) for --augment and the flip options (None: nothing done
    per batch).

    Flips: --no-flip turns every flip off; a --flip-label-map, or --augment videomae on data that flips (video
    folders), flips per batch in the training step so that labels can follow; otherwise the data's own transform
    flips as it always has (the synthetic task never: its classes include left and right)."""
    own_flip = has_own_flip(train_set)
    label_map = None
    if args.flip_label_map is not None:
        try:
            label_map = load_flip_label_map(args.flip_label_map, class_names)
        except ValueError as e:
            raise UsageError(str(e)) from None
    batch_flip = not args.no_flip and (label_map is not None or (own_flip and args.augment == "videomae"))
    keep_own_flip = own_flip and not args.no_flip and not batch_flip
    train_set, batch_augment = configure_train_set(train_set, args.augment, keep_own_flip=keep_own_flip)
    return train_set, batch_augment, (HorizontalFlip(0.5, label_map) if batch_flip else None)


def forward_backward(
    model: nn.Module,
    pixel_values: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss_scale: float = 1.0,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> torch.Tensor:
    """One micro-step: soft-target cross-entropy (targets (B, num_labels)), backward of loss * loss_scale (times the
    scaler's loss scale under fp16)."""
    with torch.autocast(pixel_values.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        logits = model(pixel_values=pixel_values).logits
    loss = soft_cross_entropy(logits, targets)
    scaled = loss * loss_scale
    (scaler.scale(scaled) if scaler is not None else scaled).backward()
    return loss.detach()


def optimizer_step(model, optimizer, *, clip_grad: float, scaler: torch.amp.GradScaler | None = None) -> None:
    """Clip (on unscaled gradients), step (skipped by the scaler when a gradient is inf/NaN), zero the gradients."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    if clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


# ---------------------------------------------------------------------------------------------------------------------
# evaluation


def evaluate_distributed(model, loader, *, device, amp_dtype, progress) -> dict:
    """Every rank evaluates its shard (all must call: FSDP forwards are collective); counts are summed."""
    from vivit.cli.evaluate import evaluate

    result = evaluate(model, loader, device=device, autocast_dtype=amp_dtype, progress=progress)
    if is_sharded(model):
        # FSDP2 leaves the root's parameters gathered after a forward: drop them so that weights swapped in for
        # evaluation (EMA) never outlive it
        model.reshard()
    if not dist.is_initialized():
        return result
    n = result["num_samples"]
    counts = torch.tensor([result["top1"] * n, result["top5"] * n, n], dtype=torch.float64)
    dist.all_reduce(counts)
    return {"top1": float(counts[0] / counts[2]), "top5": float(counts[1] / counts[2]), "num_samples": int(counts[2])}


# ---------------------------------------------------------------------------------------------------------------------
# checkpoints


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Unsharded CPU state dict under the model's parameter names (a collective under FSDP2)."""
    if not is_sharded(model):
        # copies: on the CPU `.cpu()` would alias the live parameters (and the EMA swap-back would overwrite them)
        return {k: v.detach().to("cpu", copy=True) for k, v in unwrap(model).state_dict().items()}
    model.reshard()  # the root keeps its parameters unsharded after a forward; back to DTensor shards everywhere
    full = {name: p.full_tensor().detach().cpu() for name, p in model.named_parameters()}
    for prefix, module in model.named_modules():
        for name, b in module.named_buffers(recurse=False):
            if name not in module._non_persistent_buffers_set:
                full[f"{prefix}.{name}" if prefix else name] = b.detach().cpu()
    return full


def full_optimizer_state(model: nn.Module, optimizer) -> dict:
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_optimizer_state_dict(model, optimizer, options=opts)
    return optimizer.state_dict()


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def input_processor(dataset, image_size: int):
    """The preprocessing that turns a video file into what the model was trained on, saved beside the weights so that
    `vivit predict` / `vivit eval` feed the model the same thing: the video dataset's own processor, or for the
    synthetic clips (values in [-1, 1], the whole frame) the [-1, 1] preset at the model's frame size."""
    from vivit.data.processing import VivitImageProcessor

    processor = getattr(dataset, "processor", None)
    if processor is not None:
        return processor
    return VivitImageProcessor.from_preset("original", size={"shortest_edge": image_size}, crop_size=image_size)


def save_checkpoint(
    run_dir: Path,
    *,
    model,
    optimizer,
    scheduler,
    ema,
    epoch: int,
    step: int,
    rank: int,
    args,
    history,
    processor=None,
    scaler=None,
) -> Path:
    """Gather on every rank; rank 0 writes run_dir/checkpoint-<epoch + 1>/ atomically and durably."""
    state = full_model_state(model)
    optim_state = full_optimizer_state(model, optimizer)
    ema_shadow = ema_weights = None
    if ema is not None:
        ema_shadow = ema.full_state_dict()
        with ema.swapped_in():
            ema_weights = full_model_state(model)
    rngs = [rng_state()]
    if dist.is_initialized():
        rngs = [None] * dist.get_world_size()
        dist.all_gather_object(rngs, rng_state())
    path = run_dir / f"checkpoint-{epoch + 1}"

    def write(tmp: Path) -> None:
        unwrap(model).config.save_pretrained(tmp)
        if processor is not None:
            processor.save_pretrained(tmp)
        save_file({k: v.contiguous() for k, v in state.items()}, tmp / "model.safetensors", metadata={"format": "pt"})
        if ema_weights is not None:  # the averaged weights as a directory of their own, loadable like the model
            unwrap(model).config.save_pretrained(tmp / "ema")
            if processor is not None:
                processor.save_pretrained(tmp / "ema")
            save_file(ema_weights, tmp / "ema" / "model.safetensors", metadata={"format": "pt"})
        trainer_state = {
            "optimizer": optim_state,
            "scheduler": scheduler.state_dict(),
            "ema": None if ema is None else {"shadow": ema_shadow, "num_updates": ema.num_updates},
            "scaler": None if scaler is None else scaler.state_dict(),
            "epoch": epoch,
            "step": step,
            "rng": rngs,
            "args": run_options(args),
            "history": history,
        }
        ckpt.save_state(tmp, "trainer_state", trainer_state)

    # rank 0 writes; every rank learns whether it worked, so that a failed write (disk full, say) ends all of them
    # with the same one-line error instead of leaving the others waiting until the process-group timeout
    error = failure = None
    if rank == 0:
        try:
            path = ckpt.save_versioned(run_dir, epoch + 1, write)
        except Exception as e:
            from vivit.cli import describe

            error, failure = e, describe(e)
            failure = failure if str(run_dir) in failure else f"--output-dir {run_dir}: saving {path.name}: {failure}"
    if dist.is_initialized():
        shared = [failure]
        dist.broadcast_object_list(shared, src=0)
        failure = shared[0]
    if failure is not None:
        raise CheckpointError(failure) from error
    return path


# options that define a run: a resume must repeat them (--epochs may grow; the rest only changes how it runs)
RUN_OPTIONS = (
    "variant", "config", "preset", "init", "init_tubelet", "init_pos", "init_temporal_attention", "drop_path",
    "data", "num_labels", "train_samples", "val_samples", "eval_views", "batch_size", "accum_steps", "lr", "min_lr",
    "weight_decay", "warmup_steps", "clip_grad", "label_smoothing", "mixup", "cutmix", "mixup_prob", "ema_decay",
    "seed", "max_steps", "val_data", "val_fraction", "root", "val_root", "skip_missing", "augment", "no_flip",
    "flip_label_map", "layer_decay",
)  # fmt: skip


def run_options(args: argparse.Namespace) -> dict:
    """The options as saved with a checkpoint (file and folder arguments as absolute paths)."""
    options = dict(vars(args))
    for name in ("config", "init", "data", "val_data", "root", "val_root", "flip_label_map"):
        value = options.get(name)
        if value is not None and not (name == "data" and value == "synthetic"):
            options[name] = str(Path(value).resolve())
    return options


def check_resume_options(args: argparse.Namespace, saved: dict, source: Path) -> None:
    """Refuse, by name, options that would change the run being continued."""
    now = run_options(args)
    for name in RUN_OPTIONS:
        if name in saved and saved[name] != now.get(name):  # a run saved before an option existed has no entry
            flag = "--" + name.replace("_", "-")
            raise UsageError(
                f"{flag}: expected {saved[name]!r} (the value {source} was trained with), got {now.get(name)!r}"
            )
    if args.epochs < saved["epochs"]:
        raise UsageError(f"--epochs: expected >= {saved['epochs']} (the run in {source}), got {args.epochs}")


def load_weights(model: nn.Module, path: Path) -> None:
    """model.safetensors of a checkpoint into an unwrapped, unsharded model (strict)."""
    check_safetensors(path / "model.safetensors")  # a corrupt file: one line naming it
    state = load_file(path / "model.safetensors")
    model.load_state_dict(state, strict=True)


def load_trainer_state(
    path: Path, state: dict, *, model, optimizer, scheduler, ema, rank: int, scaler=None
) -> tuple[int, int]:
    """Restore optimizer, scheduler, EMA, the fp16 gradient scaler and this rank's RNG from `state` (read from
    `path`); returns (next epoch, step). A run saved without a scaler (another --precision) starts a fresh one."""
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        opts = StateDictOptions(full_state_dict=True)
        set_optimizer_state_dict(model, optimizer, state["optimizer"], options=opts)
    else:
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    if ema is not None:
        if state["ema"] is None:
            raise UsageError(f"--ema-decay: expected 0 (the value {path} was trained with), got {ema.decay}")
        ema.load_full_state_dict(state["ema"]["shadow"], state["ema"]["num_updates"])
    rngs = state["rng"]
    if len(rngs) != (dist.get_world_size() if dist.is_initialized() else 1):
        world = dist.get_world_size() if dist.is_initialized() else 1
        raise UsageError(f"--resume {path}: expected {len(rngs)} processes (as saved), got {world}")
    set_rng_state(rngs[rank])
    return state["epoch"] + 1, state["step"]


# ---------------------------------------------------------------------------------------------------------------------
# the loop


def train_one_epoch(
    model,
    loader,
    *,
    optimizer,
    scheduler,
    mixup,
    ema,
    args,
    device,
    amp_dtype,
    epoch,
    progress,
    log=None,
    flip=None,
    scaler=None,
    batch_augment=None,
):
    model.train()
    loader.sampler.set_epoch(epoch)
    mixup.generator.manual_seed(args.seed * 100_003 + epoch)  # mixing is a function of (seed, epoch)
    rank = dist.get_rank() if dist.is_initialized() else 0
    if loader.generator is not None:  # the workers' seeds, likewise
        loader.generator.manual_seed((args.seed * 100_003 + epoch) * 1_009 + rank + 7)
    if flip is not None:  # flips are a function of (seed, epoch, rank)
        flip.generator.manual_seed((args.seed * 100_003 + epoch) * 1_009 + rank + 1)
    if batch_augment is not None:  # as are the per-batch augmentations
        batch_augment.generator.manual_seed((args.seed * 100_003 + epoch) * 1_009 + rank + 500)
    steps_per_epoch = len(loader) // args.accum_steps
    if args.max_steps is not None:
        steps_per_epoch = min(steps_per_epoch, args.max_steps)
    total_loss, n_loss = 0.0, 0
    bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{args.epochs}", disable=not progress, leave=False)
    batches = iter(loader)
    if log is not None:
        log.begin_epoch(steps_per_epoch)
    for _ in range(steps_per_epoch):
        step_loss, step_lr = 0.0, scheduler.get_last_lr()[0]  # the learning rate this step uses
        for micro in range(args.accum_steps):
            pixel_values, labels = next(batches)
            pixel_values, labels = pixel_values.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            if batch_augment is not None:
                pixel_values = batch_augment(pixel_values)
            if flip is not None:
                pixel_values, labels = flip(pixel_values, labels)
            pixel_values, targets = mixup(pixel_values, labels)
            with no_grad_sync(model, skip=micro < args.accum_steps - 1):
                loss = forward_backward(
                    model,
                    pixel_values,
                    targets,
                    loss_scale=1.0 / args.accum_steps,
                    amp_dtype=amp_dtype,
                    scaler=scaler,
                )
            total_loss += loss.item()
            step_loss += loss.item() / args.accum_steps
            n_loss += 1
        optimizer_step(model, optimizer, clip_grad=args.clip_grad, scaler=scaler)
        with warnings.catch_warnings():
            # the scaler skips the optimizer step on inf/NaN gradients (the first steps, while it finds its scale);
            # the schedule counts steps all the same, so torch's "scheduler before optimizer" warning says nothing
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            scheduler.step()
        if ema is not None:
            ema.update()
        if log is not None:  # the scheduler counts the run's optimizer steps, a resumed run's included
            log.step(scheduler.last_epoch, step_loss, step_lr)
        bar.set_postfix(loss=f"{total_loss / n_loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        bar.update()
    bar.close()
    mean = torch.tensor([total_loss, n_loss], dtype=torch.float64)
    if dist.is_initialized():
        dist.all_reduce(mean)
    return float(mean[0] / max(mean[1], 1)), steps_per_epoch


def holds_run(out: Path) -> bool:
    """Whether `out` holds what a trainer leaves: checkpoints (complete, partial or the older `checkpoint/` layout) or
    metrics."""
    if not out.is_dir():
        return False
    return (out / "metrics.jsonl").exists() or any(p.name.startswith("checkpoint") for p in out.iterdir())


def clear_run(out: Path) -> None:
    import shutil

    for p in out.iterdir():
        if p.name.startswith("checkpoint") and p.is_dir():
            shutil.rmtree(p)
        elif p.name.startswith("checkpoint") or p.name in ("metrics.jsonl", CURVES):
            p.unlink()
        elif p.name == TENSORBOARD_DIR and p.is_dir():  # the replaced run's events would mix with the new ones
            shutil.rmtree(p)


def prepare_output(args: argparse.Namespace, out: Path) -> tuple[Path | None, dict | None]:
    """Rank 0's checks of --output-dir and --resume (the lock is held by then): (checkpoint, its state) or
    (None, None) for a new run."""
    source = state = None
    if args.resume:
        source = ckpt.latest_checkpoint(Path(args.resume))
        state = ckpt.load_state(source, "trainer_state")
        check_resume_options(args, state["args"], source)
        if source.parent.resolve() == out.resolve():
            return source, state
    if holds_run(out):
        if not args.overwrite:
            raise UsageError(
                f"--output-dir {out}: expected a directory without a run, found one (continue it with --resume {out} "
                "or replace it with --overwrite)"
            )
        clear_run(out)
    return source, state


def _finite(value):
    return value if not isinstance(value, float) or math.isfinite(value) else None


def main(argv: list[str] | None = None) -> int:
    """The command. Errors propagate: `vivit.cli.run_command` prints them as one line (exit 2 for the arguments, 1
    for files, data and model)."""
    with contextlib.ExitStack() as stack:
        return _main(sys.argv[1:] if argv is None else argv, stack)


def _main(argv: list[str], stack: contextlib.ExitStack) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    rank, world, device = init_distributed(args.device)
    progress = rank == 0 and not args.no_progress
    out = Path(args.output_dir)

    # rank 0 locks the output directory and checks it and --resume; every rank learns the outcome
    failure = None
    if rank == 0:
        try:
            stack.enter_context(ckpt.run_lock(out))
            prepare_output(args, out)
        except CheckpointError as e:
            failure = (type(e).__name__, str(e))
        except OSError as e:  # e.g. an output directory that cannot be created
            failure = ("CheckpointError", f"--output-dir {out}: {e.strerror or e}: {e.filename or ''}")
    if dist.is_initialized():
        shared = [failure]
        dist.broadcast_object_list(shared, src=0)
        failure = shared[0]
    if failure is not None:
        raise (UsageError if failure[0] == "UsageError" else CheckpointError)(failure[1])
    resume_from = resume_state = None
    if args.resume:  # every rank reads the state (rank 0 has checked it)
        resume_from = ckpt.latest_checkpoint(Path(args.resume))
        resume_state = ckpt.load_state(resume_from, "trainer_state")

    # the datasets first: the number of classes sizes the head
    torch.manual_seed(args.seed)
    if args.init and Path(args.init).is_dir() and _is_vivit_dir(Path(args.init)):
        shape = VivitConfig.from_pretrained(args.init).to_dict()
    else:
        shape = build_config(args, 2).to_dict()
    train_set, val_set, class_names = build_datasets(args, shape)
    train_set, batch_augment, flip = setup_augment(args, train_set, class_names)
    num_labels = args.num_labels or len(class_names)
    size = shape["image_size"]
    processor = input_processor(val_set, size[0] if isinstance(size, (list, tuple)) else size)

    torch.manual_seed(args.seed)  # identical initial weights on every rank
    model = build_model(args, num_labels)
    if num_labels == len(class_names):  # the saved model names its classes (for `vivit predict`)
        model.config.id2label = dict(enumerate(class_names))
        model.config.label2id = {name: i for i, name in enumerate(class_names)}
    if args.resume:
        load_weights(model, resume_from)
    if args.gradient_checkpointing:
        # transformers >= 5.2x renamed it; 5.17 has only the old name
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
    model.to(device)
    if args.compile:
        model.compile(backend=args.compile)  # in place: state-dict keys keep their names
    model = wrap_model(model, args.distributed, device)

    train_loader = make_loader(
        train_set, batch_size=args.batch_size, train=True, seed=args.seed, workers=args.workers, rank=rank, world=world
    )
    val_loader = make_loader(
        val_set, batch_size=args.batch_size, train=False, seed=args.seed, workers=args.workers, rank=rank, world=world
    )
    set_main_process_threads(train_loader.num_workers, device, stack)
    steps_per_epoch = len(train_loader) // args.accum_steps
    if args.max_steps is not None:
        steps_per_epoch = min(steps_per_epoch, args.max_steps)
    if steps_per_epoch < 1:
        raise UsageError(
            f"--batch-size {args.batch_size} x --accum-steps {args.accum_steps} x {world} processes is more than the "
            f"{len(train_set)} training clips: no optimizer step would run"
        )
    total_steps = steps_per_epoch * args.epochs
    warmup = args.warmup_steps if args.warmup_steps is not None else max(1, total_steps // 20)
    optimizer = build_optimizer(model, args.lr, args.weight_decay, layer_decay=args.layer_decay)
    scheduler = warmup_cosine(optimizer, total_steps=total_steps, warmup_steps=warmup, lr=args.lr, min_lr=args.min_lr)
    ema = ModelEMA(model, args.ema_decay) if args.ema_decay > 0 else None
    mixup = Mixup(
        num_labels,
        mixup_alpha=args.mixup,
        cutmix_alpha=args.cutmix,
        prob=args.mixup_prob,
        label_smoothing=args.label_smoothing,
    )
    amp_dtype = autocast_dtype(args.precision, device)
    scaler = grad_scaler(args.precision, device)

    first_epoch, step, history = 0, 0, []
    torch.manual_seed(args.seed + rank)  # dropout / stochastic depth differ per rank
    metrics_path = out / "metrics.jsonl"
    if resume_from is not None:
        first_epoch, step = load_trainer_state(
            resume_from,
            resume_state,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            ema=ema,
            rank=rank,
            scaler=scaler,
        )
        history = list(resume_state["history"])
    if rank == 0:  # metrics.jsonl says what the checkpoint holds: no epoch lost or repeated by a crash
        ckpt.remove_leftovers(metrics_path)
        ckpt.write_text_durably(metrics_path, "".join(json.dumps(r) + "\n" for r in history))
    checkpoint = resume_from
    log = stack.enter_context(
        TrainingLog(out, log=args.log, writer=rank == 0, resume_step=step if args.resume else None)
    )

    last = history[-1] if history else {}
    val = {"top1": last.get("val_top1"), "top5": last.get("val_top5")}
    ema_val = {"top1": last["ema_val_top1"]} if "ema_val_top1" in last else None
    last_epoch = args.epochs if args.stop_after_epochs is None else min(args.epochs, args.stop_after_epochs)
    for epoch in range(first_epoch, last_epoch):
        train_loss, steps = train_one_epoch(
            model,
            train_loader,
            optimizer=optimizer,
            scheduler=scheduler,
            mixup=mixup,
            ema=ema,
            args=args,
            device=device,
            amp_dtype=amp_dtype,
            epoch=epoch,
            progress=progress,
            log=log,
            flip=flip,
            scaler=scaler,
            batch_augment=batch_augment,
        )
        step += steps
        val = evaluate_distributed(model, val_loader, device=device, amp_dtype=amp_dtype, progress=progress)
        if ema is not None:
            with ema.swapped_in():
                ema_val = evaluate_distributed(model, val_loader, device=device, amp_dtype=amp_dtype, progress=False)
        record = {
            "epoch": epoch + 1,
            "step": step,
            "train_loss": round(train_loss, 6),
            "lr": scheduler.get_last_lr()[0],
            "val_top1": val["top1"],
            "val_top5": val["top5"],
            "seconds": round(time.perf_counter() - start, 2),
            "step_curve": log.take_step_curve(),
        }
        if ema_val is not None:
            record.update(ema_val_top1=ema_val["top1"], ema_val_top5=ema_val["top5"])
        record = {k: _finite(v) for k, v in record.items()}
        history.append(record)
        checkpoint = save_checkpoint(
            out,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            ema=ema,
            epoch=epoch,
            step=step,
            rank=rank,
            args=args,
            history=history,
            processor=processor,
            scaler=scaler,
        )
        if rank == 0:
            ckpt.append_line_durably(metrics_path, json.dumps(record))
            shown = {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in record.items()}
            print(" ".join(f"{k}={v}" for k, v in shown.items() if k != "step_curve"), flush=True)
            log.end_epoch(record)

    summary = {
        "val_top1": val["top1"],
        "val_top5": val["top5"],
        "epochs": history[-1]["epoch"] if history else 0,
        "steps": step,
        "seconds": round(time.perf_counter() - start, 2),
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "metrics": str(metrics_path),
        "world_size": world,
    }
    if ema_val is not None:
        summary["ema_val_top1"] = ema_val["top1"]
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    if rank == 0:
        print(json.dumps({k: _finite(v) for k, v in summary.items()}), flush=True)
    return 0


if __name__ == "__main__":
    from vivit.cli import run_command

    sys.exit(run_command("train", main))
