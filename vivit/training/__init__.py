"""The trainer (`vivit train`), its checkpoints, EMA, mixup/cutmix and run logs."""
