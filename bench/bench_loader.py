"""Loader rows: does `vivit train`'s data path keep up with its training step on this machine?

The real path on video files: a class folder of H.264 MP4 clips (bench/loader_data.py), read by the trainer's own
`build_datasets` / `setup_augment` / `make_loader` (default model: 8 frames at stride 2, 32x32 crops; batch 32),
with `--augment light` (the default) and `videomae`, through a DataLoader with 0, 1 and 2 workers (one call = one
epoch, fresh workers as the trainer starts them). The step is the trainer's own `train_one_epoch` (forward, backward,
clipping, AdamW, schedule) on the default model, over the same number of batches held in memory; a third candidate is
`train_one_epoch` fed by the 2-worker loader (loader and step then share the cores, as in a real run).

Rows (seconds per batch of `BATCH` clips; clips/s in the row's note):
- "keeps up": ours = the 2-worker loader, baseline = the step; the ratio (step s / loader s) is loader clips/s over
  step clips/s, >= 1 when the loader keeps up. Recorded, never asserted.
- a 720p source variant of the loader (light): the resize from 720p to the model's 40-pixel scale jitter is in it.
- the per-core cost of one ViViT-B/16x2 clip (32 frames at stride 2 from the 720p file, crop 224), decode alone and
  with each recipe, pinned to one core: the input of the GPU-feeding model in BENCHMARKS.md.

The step runs on the harness's torch threads (`VIVIT_BENCH_THREADS`, default 2, as the trainer's main process has on
2 cores); on a loaded machine two threads of the default model's small matmuls slow far more than the one-thread
workers, so state the load with every figure (BENCHMARKS.md, "Loader").

`--benchmark-disable` (the CI smoke test) runs every path once on tiny folders and batches of 4, in seconds.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time

import _harness as H
import loader_data as D
import pytest
import torch

RECIPES = ("light", "videomae")
# bench/charts.py draws no speedup chart for this group: a loader against a step is no "ours against a baseline"
GROUP = "loader"
WORKERS = (2, 1, 0)  # the first is "ours": what `vivit train` uses on 2 cores (--workers default: the usable cores)


def _sizes() -> dict:
    if H.timing_disabled():  # smoke: every code path once, tiny
        return dict(
            batch=4,
            native=dict(classes=2, per_class=5, distinct=2, frames=16, height=40, width=52),
            hd=dict(classes=2, per_class=3, distinct=1, frames=8, height=720, width=1280),
        )
    return dict(
        batch=32,  # `vivit train --batch-size` default
        # 384 clips of 1.3 s at the scale the default model reads (its scale jitter is 32-40 pixels short side);
        # 344 train after the trainer's 10 % validation split: 10 batches
        native=dict(classes=8, per_class=48, distinct=16, frames=32, height=40, width=52),
        # 72 clips of 2.6 s at 720p: 64 train, 2 batches
        hd=dict(classes=2, per_class=36, distinct=2, frames=64, height=720, width=1280),
    )


def _rounds() -> int:
    return 1 if H.timing_disabled() else max(2, round(H.OPTIONS["seconds"] / 2))


@pytest.fixture(scope="session")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    s = _sizes()
    return {
        "native": D.write_class_folder(root / "native", **s["native"]),
        "hd": D.write_class_folder(root / "hd", **s["hd"]),
    }


def interleaved(candidates: dict, rounds: int) -> tuple[dict, dict]:
    """(median seconds per call, last return value) of each candidate, timed in `rounds` rounds whose order rotates
    (shared machines drift: only figures from the same rounds are compared)."""
    names = list(candidates)
    times, last = {name: [] for name in names}, {}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            last[name] = candidates[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, last


def _warm_up(fn):
    """One untimed call when timing is on (AdamW's state, the allocator); none in the smoke test, whose single pass
    is untimed anyway."""
    if not H.timing_disabled():
        fn()


def _consume(loader) -> int:
    clips = 0
    for pixel_values, _ in loader:
        clips += pixel_values.shape[0]
    return clips


def _workers_name(w: int) -> str:
    return f"{w} worker" + ("" if w == 1 else "s")


def _loaders(folder, recipe: str, batch: int, out):
    made = {}
    for w in WORKERS:
        args = D.train_args(folder.root, recipe=recipe, workers=w, batch_size=batch, output_dir=out)
        made[w] = D.train_loader(args)
    return args, made


def _rate_note(seconds: dict, batch: int) -> str:
    if H.timing_disabled():
        return ""
    return ", ".join(f"{name} {batch / s:.0f} clips/s" for name, s in seconds.items())


def _figures(text: str) -> str:
    """`text` when timing is on; nothing in the smoke test (one untimed pass)."""
    return "" if H.timing_disabled() else text


def _loader_row(op: str, seconds: dict, batch: int) -> H.Row:
    return H.Row(op=op, ours=_workers_name(WORKERS[0]), seconds=seconds, note=_rate_note(seconds, batch), group=GROUP)


@pytest.mark.parametrize("recipe", RECIPES)
def test_loader_keeps_up_with_step(folders, recipe, tmp_path):
    batch, folder = _sizes()["batch"], folders["native"]
    args, made = _loaders(folder, recipe, batch, tmp_path)
    loader, flip, num_labels = made[WORKERS[0]]
    batches = [next(iter(made[0][0]))] * len(loader)  # real clips, the same batch each step: no loading in the step
    assert batches[0][0].shape == (batch, 8, 3, 32, 32), batches[0][0].shape
    trainer = D.Trainer(args, num_labels, len(loader), flip=flip)
    memory = D.MemoryLoader(batches)
    # No warm-up epoch for the loaders: the trainer starts fresh workers every epoch and the files are in the page
    # cache already, so a first epoch costs what every epoch costs.
    _warm_up(lambda: trainer.epoch_over(memory))
    candidates = {_workers_name(w): (lambda w=w: _consume(made[w][0])) for w in WORKERS}
    candidates["step"] = lambda: trainer.epoch_over(memory)
    candidates["step fed by loader"] = lambda: trainer.epoch_over(loader)
    per_epoch, last = interleaved(candidates, _rounds())
    # every candidate did a whole epoch: the same clips, the same steps
    assert {last[_workers_name(w)] for w in WORKERS} == {len(loader) * batch}, last
    assert last["step"] == last["step fed by loader"] == len(loader), last
    per_batch = {name: s / len(loader) for name, s in per_epoch.items()}
    where = f"{recipe}, {folder.label()}, batch {batch}"
    H.record(_loader_row(f"loader ({where})", {_workers_name(w): per_batch[_workers_name(w)] for w in WORKERS}, batch))
    step = per_batch["step"]
    flops = trainer.step_flops(batches[0][0])
    H.record(
        H.Row(
            group=GROUP,
            op=f"training step (default model, {recipe}, batch {batch})",
            ours="train_one_epoch, batches in memory",
            seconds={"train_one_epoch, batches in memory": step},
            flops=flops,
            note=_figures(f"{batch / step:.0f} clips/s; ") + "FLOPs: forward + backward by torch.utils.flop_counter",
        )
    )
    ours = f"loader, {_workers_name(WORKERS[0])}"
    H.record(
        H.Row(
            group=GROUP,
            op=f"keeps up: loader vs step ({recipe})",
            ours=ours,
            seconds={ours: per_batch[_workers_name(WORKERS[0])], "training step": step},
            note="ratio = loader clips/s / step clips/s (>= 1: the loader keeps up); measured apart, not sharing cores",
        )
    )
    fed = per_batch["step fed by loader"]
    H.record(
        H.Row(
            group=GROUP,
            op=f"training epoch fed by the loader ({recipe})",
            ours="step fed by 2-worker loader",
            seconds={"step fed by 2-worker loader": fed, "step, batches in memory": step},
            note=_figures(f"{batch / fed:.0f} clips/s end to end; ")
            + "ratio = its share of the step-only rate (loader and step share the cores)",
        )
    )


def test_loader_720p_source(folders, tmp_path):
    batch, folder = _sizes()["batch"], folders["hd"]
    _, made = _loaders(folder, "light", batch, tmp_path)
    loader = made[WORKERS[0]][0]
    per_epoch, last = interleaved({_workers_name(w): (lambda w=w: _consume(made[w][0])) for w in WORKERS}, _rounds())
    assert set(last.values()) == {len(loader) * batch}, last
    per_batch = {name: s / len(loader) for name, s in per_epoch.items()}
    H.record(_loader_row(f"loader (light, {folder.label()}, batch {batch})", per_batch, batch))


def _on_one_core(fn):
    """fn() with this thread pinned to one core and torch on one thread; threads that decoding starts inherit the
    pin, so the time is one core's."""
    cores, threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, {min(cores)})
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)
        os.sched_setaffinity(0, cores)


def test_vivit_b_clip_cost_per_core(folders):
    """One ViViT-B/16x2 training clip from the 720p files: decode (read_video, 32 frames at stride 2) alone, and the
    whole dataset item with each recipe (decode, scale jitter / RandomResizedCrop to 224, RandAugment, normalize)."""
    from vivit.data.augment import configure_train_set
    from vivit.data.io import read_video
    from vivit.data.spec import open_dataset

    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("the per-core figure pins the reading thread to one core: needs os.sched_setaffinity (Linux)")
    folder = folders["hd"]
    dataset = {r: open_dataset(folder.root, "all", num_frames=32, image_size=224, train=True) for r in RECIPES}
    for recipe, d in dataset.items():
        configure_train_set(d, recipe, keep_own_flip=recipe == "light")
    # Every call reads the next hard link: a path read before would skip the reader's indexing pass (cached by path).
    order = itertools.cycle(range(len(dataset["light"])))
    per_call = 1 if H.timing_disabled() else 4  # clips per timed call: each of the 2 distinct 720p files twice
    paths = [s.path for s in dataset["light"].samples]

    def each(fn):
        def run():
            for _ in range(per_call):  # one clip alive at a time (a 720p clip is 88 MB), as in a loader worker
                shape = tuple(fn(next(order)).shape)
            return shape

        return run

    candidates = {"decode only": each(lambda i: read_video(paths[i], 32, stride=2))}
    candidates.update({f"decode + {r}": each(lambda i, r=r: dataset[r][i][0]) for r in RECIPES})
    for fn in candidates.values():  # the first decode in a process pays codec and allocator set-up
        _on_one_core(lambda fn=fn: _warm_up(fn))
    per_call_s, last = _on_one_core(lambda: interleaved(candidates, _rounds()))
    assert last["decode only"] == (32, folder.height, folder.width, 3), last["decode only"]
    assert {last[f"decode + {r}"] for r in RECIPES} == {(32, 3, 224, 224)}, last
    per_clip = {name: s / per_call for name, s in per_call_s.items()}
    decoded = min(folder.frames, 63)  # the reader decodes from the key frame (frame 0) to the clip's last frame
    H.record(
        H.Row(
            group=GROUP,
            op=f"ViViT-B clip, 32x2 frames of {folder.height}p to 224, one core",
            ours="decode only",
            seconds=per_clip,
            note=_figures(f"per clip on one core: {', '.join(f'{n} {s * 1e3:.0f} ms' for n, s in per_clip.items())}; ")
            + f"~{decoded} frames decoded per clip ({folder.megabits_per_s:.2g} Mbit/s H.264)",
        )
    )


def test_gpu_feeding_model_flops_formula():
    """The MODELED GPU side of BENCHMARKS.md ("Feeding one GPU"): its ViViT-B/16x2 forward-FLOP formula against
    torch.utils.flop_counter on the real model (meta device: shapes only, no compute)."""
    import gpu_feeding_model as M

    counted = M.counted_forward_flops()
    assert abs(M.forward_flops() - counted) <= 1e-9 * counted, (M.forward_flops(), counted)
