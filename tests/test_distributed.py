"""The trainer across processes on the CPU (gloo): DDP gradients, an FSDP2 run that checkpoints and resumes, and a
checkpoint write that fails on rank 0 ending every rank with the same one-line error."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _helpers import TINY
from safetensors.torch import load_file

from vivit.models.configuration import VivitConfig
from vivit.models.modeling import VivitForVideoClassification
from vivit.training.mixup import smooth_one_hot
from vivit.training.train import forward_backward, init_distributed, main, wrap_model

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")

ROOT = Path(__file__).resolve().parents[1]
TWO_BLOCKS = {**TINY, "num_hidden_layers": 2}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join_within(context, seconds: float, what: str) -> None:
    """Joins spawned ranks (raising what a rank raised); a rank still running after `seconds` fails the test, so a
    stalled rendezvous cannot hang the suite."""
    deadline = time.monotonic() + seconds
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"{what}: still running after {seconds} s")


def _batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, 3, 16, 16, generator=g)
    y = torch.randint(0, 8, (6,), generator=g)
    return x, smooth_one_hot(y, 8, 0.1)


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    got_rank, got_world, device = init_distributed("cpu")
    assert (got_rank, got_world) == (rank, world)
    torch.manual_seed(0)
    model = wrap_model(VivitForVideoClassification(VivitConfig(**TWO_BLOCKS, num_labels=8)), "ddp", device)
    x, t = _batch()
    share = slice(rank * 3, rank * 3 + 3)  # each rank sees half of the batch
    forward_backward(model, x[share], t[share])
    if rank == 0:
        torch.save({n: p.grad for n, p in model.module.named_parameters()}, out)
    dist.barrier()
    dist.destroy_process_group()


def test_ddp_two_processes_give_the_gradients_of_the_combined_batch(tmp_path):
    out = tmp_path / "grads.pt"
    context = mp.start_processes(
        _ddp_worker, args=(2, _free_port(), str(out)), nprocs=2, join=False, start_method="spawn"
    )
    _join_within(context, 300, "the two DDP ranks")
    torch.manual_seed(0)
    model = VivitForVideoClassification(VivitConfig(**TWO_BLOCKS, num_labels=8))
    x, t = _batch()
    forward_backward(model, x, t)
    ddp = torch.load(out)
    assert ddp.keys() == dict(model.named_parameters()).keys()
    for name, p in model.named_parameters():
        torch.testing.assert_close(ddp[name], p.grad, atol=1e-6, rtol=1e-5, msg=name)


def _full_disk_worker(rank: int, world: int, port: int, config: str, out: str) -> None:
    """A one-step run whose checkpoint write fails on rank 0 (disk full); writes every rank's exit status and stderr."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    os.environ.pop("VIVIT_DEBUG", None)
    torch.set_num_threads(1)
    import vivit.training.checkpointing as ckpt
    from vivit.cli import main as cli

    if rank == 0:

        def full_disk(run_dir, epoch, write):
            target = run_dir / f"checkpoint-{epoch}.partial" / "model.safetensors"
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

        ckpt.save_versioned = full_disk
    argv = ["train", "--config", config, "--train-samples", "8", "--val-samples", "4", "--batch-size", "2"]
    argv += ["--epochs", "1", "--max-steps", "1", "--no-progress", "--device", "cpu", "--output-dir", out]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli(argv)
    Path(out, f"rank{rank}.json").write_text(json.dumps({"code": code, "stderr": err.getvalue()}))


def test_a_failed_checkpoint_write_on_rank_0_ends_every_rank_with_one_line(tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "run"
    args = (2, _free_port(), str(config), str(out))
    context = mp.start_processes(_full_disk_worker, args=args, nprocs=2, join=False, start_method="spawn")
    # Without the shared outcome rank 1 would wait for the process-group timeout.
    _join_within(context, 120, "a rank after rank 0's checkpoint write failed")
    expected = f"vivit train: error: {out}/checkpoint-1.partial/model.safetensors: No space left on device"
    for rank in (0, 1):
        result = json.loads((out / f"rank{rank}.json").read_text())
        assert result["code"] == 1, result
        assert "Traceback" not in result["stderr"], result["stderr"]
        assert [line for line in result["stderr"].splitlines() if line.startswith("vivit ")] == [expected]


def _torchrun(args: list[str], cwd: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port())]
    proc = subprocess.run(cmd + ["-m", "vivit.training.train", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_same_weights(a_dir: Path, b_dir: Path) -> None:
    a, b = load_file(a_dir / "model.safetensors"), load_file(b_dir / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        # a key bias has an exactly zero gradient (softmax ignores a constant added to every score of a query): its
        # values are rounding noise that Adam scales up to ~lr-sized steps, so only their size is compared
        atol = 1e-4 if k.endswith("k_proj.bias") else 2e-5
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-4, msg=k)


def test_fsdp2_run_checkpoints_reloads_and_resumes(tmp_path, capsys):
    """2 FSDP2 processes x batch 4 == 1 process x batch 8 (the samplers split the same shuffled order), through a
    checkpoint after epoch 1 and a resume from it (optimizer state re-sharded from the full state dict)."""
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TWO_BLOCKS))
    common = ["--config", str(config), "--train-samples", "32", "--val-samples", "16", "--epochs", "2", "--no-progress"]
    common += ["--lr", "3e-3", "--ema-decay", "0.9", "--accum-steps", "2"]

    # the reference: one process
    assert (
        main(common + ["--batch-size", "8", "--output-dir", str(tmp_path / "one_a"), "--stop-after-epochs", "1"]) == 0
    )
    assert main(common + ["--batch-size", "8", "--output-dir", str(tmp_path / "one_b")]) == 0
    capsys.readouterr()

    fsdp = common + ["--batch-size", "4", "--distributed", "fsdp", "--output-dir", str(tmp_path / "fsdp")]
    first = _torchrun(fsdp + ["--stop-after-epochs", "1"], tmp_path)
    assert first["world_size"] == 2 and first["epochs"] == 1
    ckpt = Path(first["checkpoint"])
    _assert_same_weights(ckpt, tmp_path / "one_a" / "checkpoint-1")
    _assert_same_weights(ckpt / "ema", tmp_path / "one_a" / "checkpoint-1" / "ema")
    reloaded = VivitForVideoClassification.from_pretrained(ckpt)  # the gathered checkpoint is a normal HF directory
    assert reloaded.config.num_labels == 8

    second = _torchrun(fsdp + ["--resume", str(ckpt)], tmp_path)
    assert second["epochs"] == 2
    _assert_same_weights(Path(second["checkpoint"]), tmp_path / "one_b" / "checkpoint-2")
    assert sorted(p.name for p in (tmp_path / "fsdp").glob("checkpoint*")) == ["checkpoint-2"]
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "fsdp" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]

    # a refused resume ends the run with exit status 2 and a one-line error (torchrun then reports the failure)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port())]
    cmd += ["-m", "vivit.training.train", *fsdp, "--resume", str(tmp_path / "fsdp"), "--seed", "1"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    # (no hang: the timeout above; once one rank exits, torchrun may stop the other before it prints, so count >= 1)
    assert proc.returncode != 0
    assert proc.stderr.count("vivit train: error: --seed: expected 0") >= 1, proc.stderr[-3000:]
    assert "vivit/training/train.py" not in proc.stderr and "exitcode  : 2" in proc.stderr, proc.stderr[-4000:]
