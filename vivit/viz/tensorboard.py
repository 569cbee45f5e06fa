"""TensorBoard logging for the trainer: loss and learning rate per optimizer step, validation metrics per epoch.

TensorBoard is optional (`pip install 'vivit[tensorboard]'`); it is imported only when a logger is made.
"""

from __future__ import annotations

import math
import os

INSTALL_HINT = "pip install 'vivit[tensorboard]'"

# metrics.jsonl field -> TensorBoard tag, for the per-epoch values
EPOCH_TAGS = {
    "train_loss": "train/epoch_loss",
    "val_top1": "val/top1",
    "val_top5": "val/top5",
    "ema_val_top1": "val/ema_top1",
    "ema_val_top5": "val/ema_top5",
}


def summary_writer_class():
    """torch.utils.tensorboard.SummaryWriter, or ImportError with a one-line install hint when TensorBoard is
    missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError(f"--log tensorboard: the tensorboard package is not installed ({INSTALL_HINT})") from None
    return SummaryWriter


class TensorBoardLogger:
    """Event files in `log_dir`. Scalars are indexed by optimizer step (the validation metrics by the step at the end
    of their epoch). `purge_step`: on a resume, the first step that will be logged again; events a crashed run wrote
    from there on are hidden, so no step shows twice."""

    def __init__(self, log_dir: str | os.PathLike, purge_step: int | None = None):
        self.writer = summary_writer_class()(log_dir=str(log_dir), purge_step=purge_step)

    def log_step(self, step: int, loss: float, lr: float) -> None:
        if math.isfinite(loss):
            self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def log_epoch(self, record: dict) -> None:
        """One metrics.jsonl record: its numeric fields, at its `step`."""
        for field, tag in EPOCH_TAGS.items():
            value = record.get(field)
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(tag, value, record["step"])
        self.writer.add_scalar("epoch", record["epoch"], record["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


__all__ = ["INSTALL_HINT", "TensorBoardLogger", "summary_writer_class"]
