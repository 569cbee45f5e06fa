"""What the trainer records beside its checkpoints while it runs: a compact per-step loss curve for metrics.jsonl,
OUTPUT_DIR/curves.png redrawn after every epoch, and optionally TensorBoard events in OUTPUT_DIR/tb."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
import torch.distributed as dist

CURVES = "curves.png"
TENSORBOARD_DIR = "tb"
# points of the per-step loss curve kept per epoch in metrics.jsonl (each the mean over its window of steps)
MAX_CURVE_POINTS = 50


class TrainingLog:
    """The trainer's per-step and per-epoch records. Every rank calls `begin_epoch`, `step` and `take_step_curve`
    (the last is a collective under torchrun); only the writer (rank 0) draws and writes TensorBoard events.

    Args:
        output_dir: the run directory.
        log: "none" or "tensorboard".
        writer: whether this process writes files (rank 0).
        resume_step: the optimizer step the run continues from (a resume), else None.
    """

    def __init__(self, output_dir: str | Path, *, log: str = "none", writer: bool = True, resume_step=None):
        if log not in ("none", "tensorboard"):
            raise ValueError(f"--log: expected 'none' or 'tensorboard', got {log!r}")
        self.output_dir = Path(output_dir)
        self.writer = writer
        self.tensorboard = None
        if log == "tensorboard":
            from vivit.training.checkpointing import UsageError
            from vivit.viz.tensorboard import TensorBoardLogger, summary_writer_class

            try:  # on every process, so that all of them stop (not only the one that would write)
                summary_writer_class()
            except ImportError as e:
                raise UsageError(str(e)) from None
            if writer:
                purge = None if resume_step is None else resume_step + 1
                self.tensorboard = TensorBoardLogger(self.output_dir / TENSORBOARD_DIR, purge_step=purge)
        self._plot_failed = False
        self._window = 1
        # per window of the epoch: the summed loss, its number of steps, the last step and its learning rate
        self._sums: list[float] = []
        self._counts: list[int] = []
        self._ends: list[tuple[int, float]] = []

    def __enter__(self) -> TrainingLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None

    # per step -------------------------------------------------------------------------------------------------------

    def begin_epoch(self, steps: int) -> None:
        """Start an epoch of `steps` optimizer steps: its curve gets at most MAX_CURVE_POINTS windows of equal size."""
        self._window = max(1, math.ceil(steps / MAX_CURVE_POINTS))
        self._sums, self._counts, self._ends = [], [], []

    def step(self, step: int, loss: float, lr: float) -> None:
        """After optimizer step number `step` (counted from the start of the run): this process's loss and the
        learning rate the step used."""
        if not self._counts or self._counts[-1] == self._window:
            self._sums.append(0.0)
            self._counts.append(0)
            self._ends.append((step, lr))
        self._sums[-1] += loss
        self._counts[-1] += 1
        self._ends[-1] = (step, lr)
        if self.tensorboard is not None:
            self.tensorboard.log_step(step, loss, lr)

    def take_step_curve(self) -> list[list]:
        """The epoch's [step, mean loss, lr] points (the loss averaged over the window's steps and, under torchrun,
        over processes; a non-finite mean is null), and a fresh start."""
        sums = torch.tensor(self._sums, dtype=torch.float64)
        if dist.is_initialized():
            dist.all_reduce(sums)
            sums /= dist.get_world_size()
        points = []
        for total, count, (step, lr) in zip(sums.tolist(), self._counts, self._ends):
            mean = total / count
            points.append([step, round(mean, 6) if math.isfinite(mean) else None, lr if math.isfinite(lr) else None])
        self._sums, self._counts, self._ends = [], [], []
        return points

    # per epoch ------------------------------------------------------------------------------------------------------

    def end_epoch(self, record: dict) -> None:
        """After the epoch's line is in metrics.jsonl: TensorBoard's epoch scalars and a new curves.png. A figure
        that cannot be drawn is warned about once and never stops training."""
        if not self.writer:
            return
        if self.tensorboard is not None:
            self.tensorboard.log_epoch(record)
        try:
            from vivit.viz.curves import plot_runs

            plot_runs(
                [self.output_dir], self.output_dir / CURVES, title=f"vivit train: {self.output_dir.resolve().name}"
            )
        except Exception as e:  # a figure is a convenience: the run goes on without it
            if not self._plot_failed:
                self._plot_failed = True
                warnings.warn(
                    f"{self.output_dir / CURVES}: not drawn ({type(e).__name__}: {e}); training continues",
                    RuntimeWarning,
                    stacklevel=2,
                )


__all__ = ["CURVES", "MAX_CURVE_POINTS", "TENSORBOARD_DIR", "TrainingLog"]
