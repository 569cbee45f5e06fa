"""open_dataset (vivit/data/spec.py): every dataset form, the automatic split, Kinetics and SSv2 naming, errors; the
trainer reading a plain class folder. Split tests list empty files (nothing is decoded); decoding tests encode tiny
clips."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from _helpers import TINY, random_frames

from vivit.data.datasets import AnnotationError
from vivit.data.io import write_video
from vivit.data.processing import VivitImageProcessor
from vivit.data.spec import DatasetSpecError, open_dataset, stratified_split

PROC = VivitImageProcessor(size={"shortest_edge": 18}, crop_size=16)


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def class_tree(root: Path, counts: dict[str, int], ext: str = ".mp4") -> Path:
    for name, count in counts.items():
        for i in range(count):
            touch(root / name / f"{name}{i}{ext}")
    return root


def names(dataset) -> list[str]:
    return sorted(os.path.basename(s.path) for s in dataset.samples)


# ---------------------------------------------------------------------------------------------------------------------
# class folders and the automatic split


def test_plain_folder_gets_a_seeded_stratified_split(tmp_path):
    root = class_tree(tmp_path / "data", {"run": 10, "jump": 7, "sit": 2})
    whole = open_dataset(root, "all")
    assert whole.classes == ["jump", "run", "sit"] and len(whole) == 19
    train, val = open_dataset(root, "train", seed=3), open_dataset(root, "val", seed=3)
    assert set(names(train)).isdisjoint(names(val)) and sorted(names(train) + names(val)) == names(whole)
    per_class = lambda ds: {c: sum(1 for s in ds.samples if s.label == i) for i, c in enumerate(ds.classes)}
    assert per_class(val) == {"jump": 1, "run": 1, "sit": 1}  # round(10%), at least 1 of every class
    assert per_class(train) == {"jump": 6, "run": 9, "sit": 1}
    wide = open_dataset(root, "val", seed=3, val_fraction=0.3)
    assert {c: n for c, n in per_class(wide).items()} == {"jump": 2, "run": 3, "sit": 1}
    # the same seed gives the same split; other seeds give others
    assert names(open_dataset(root, "val", seed=3)) == names(val)
    assert len({tuple(names(open_dataset(root, "val", seed=s))) for s in range(6)}) > 1
    # split=None (what `vivit eval` evaluates): no val split here, so every clip
    assert names(open_dataset(root, None)) == names(whole)
    assert train.class_to_idx == val.class_to_idx == {"jump": 0, "run": 1, "sit": 2}


def test_stratified_split_keeps_every_class_on_both_sides():
    labels = [c for c in range(5) for _ in range(2 + c)]
    for seed in range(4):
        train, val = stratified_split(labels, 0.5, seed)
        assert sorted(train + val) == list(range(len(labels)))
        assert {labels[i] for i in train} == {labels[i] for i in val} == set(range(5))
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(labels, 0.0, 0)


def test_a_single_clip_class_is_refused_by_name_when_a_split_is_needed(tmp_path):
    root = class_tree(tmp_path / "data", {"run": 3, "lonely": 1})
    with pytest.raises(DatasetSpecError, match=r"class 'lonely' has 1 clip") as info:
        open_dataset(root, "train")
    assert str(root) in str(info.value)
    assert len(open_dataset(root, "all")) == 4  # no split needed: fine
    assert len(open_dataset(root, "train", val_fraction=0)) == 4  # split off: the whole folder trains


def test_folder_with_split_folders(tmp_path):
    root = tmp_path / "data"
    class_tree(root / "train", {"a": 3, "b": 3})
    class_tree(root / "validation", {"a": 1, "b": 1})
    train, val = open_dataset(root, "train"), open_dataset(root, "val")
    assert len(train) == 6 and all("/train/" in s.path for s in train.samples)
    assert len(val) == 2 and all("/validation/" in s.path for s in val.samples)
    assert names(open_dataset(root, None)) == names(val)  # eval's default: the val split
    assert len(open_dataset(root, "all")) == 8
    with pytest.raises(DatasetSpecError, match=r"no test split \(splits: train, val\)"):
        open_dataset(root, "test")
    with pytest.raises(DatasetSpecError, match=r"no test split \(it has no splits\)"):
        open_dataset(class_tree(tmp_path / "plain", {"a": 2}), "test")
    # a tree with train/ only: val is carved out of train, and train loses those clips
    only = tmp_path / "only"
    class_tree(only / "train", {"a": 4, "b": 4})
    carved_train, carved_val = open_dataset(only, "train"), open_dataset(only, "val")
    assert len(carved_train) == 6 and len(carved_val) == 2
    assert set(names(carved_train)).isdisjoint(names(carved_val))


def test_class_folder_with_a_split_like_name_is_still_a_class(tmp_path):
    root = class_tree(tmp_path / "data", {"test": 2, "walk": 2})
    assert open_dataset(root, "all").classes == ["test", "walk"]
    class_tree(root / "train", {"walk": 1})  # now two split names beside a class: ambiguous, refused
    with pytest.raises(DatasetSpecError, match=r"split folders \['test', 'train'\] beside other folders \['walk'\]"):
        open_dataset(root, "all")


def test_model_labels_are_checked(tmp_path):
    root = class_tree(tmp_path / "data", {"run": 2, "swim": 2})
    with pytest.raises(ValueError, match=r"\['swim'\] are not in class_to_idx"):
        open_dataset(root, "all", class_to_idx={"run": 0, "walk": 1})
    ds = open_dataset(root, "all", class_to_idx={"walk": 0, "swim": 2, "run": 1})
    assert ds.classes == ["walk", "run", "swim"] and ds.targets == [1, 1, 2, 2]


# ---------------------------------------------------------------------------------------------------------------------
# annotation lists


def test_csv_list_with_quoted_relative_paths(tmp_path):
    for i in range(3):
        touch(tmp_path / "clips" / f"a, b {i}.mp4")
        touch(tmp_path / "clips" / f"c{i}.mp4")
    lines = ["path,label,start,end"] + [f'"clips/a, b {i}.mp4",open,0.5,2' for i in range(3)]
    lines += [f"clips/c{i}.mp4,close,," for i in range(3)]
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    whole = open_dataset(tmp_path / "list.csv", None)
    assert whole.classes == ["close", "open"] and len(whole) == 6
    assert whole.samples[0].path == str(tmp_path / "clips" / "a, b 0.mp4") and whole.samples[0].start_sec == 0.5
    train, val = open_dataset(tmp_path / "list.csv", "train"), open_dataset(tmp_path / "list.csv", "val")
    assert len(train) == 4 and len(val) == 2 and sorted(val.targets) == [0, 1]
    # a TSV (same parser)
    (tmp_path / "list.tsv").write_text("path\tlabel\n" + "".join(f"clips/c{i}.mp4\t1\n" for i in range(3)))
    assert open_dataset(tmp_path / "list.tsv", "all").targets == [1, 1, 1]


def test_list_with_a_missing_video_is_refused_unless_skipped(tmp_path):
    touch(tmp_path / "v0.mp4")
    (tmp_path / "list.txt").write_text("v0.mp4 0\nv1.mp4 0\n")
    with pytest.raises(FileNotFoundError, match=r"list.txt: 1 of 2 listed videos do not exist \(first: .*v1.mp4"):
        open_dataset(tmp_path / "list.txt", "all")
    ds = open_dataset(tmp_path / "list.txt", "all", skip_missing=True)
    assert len(ds) == 1 and ds.missing == [str(tmp_path / "v1.mp4")]


# ---------------------------------------------------------------------------------------------------------------------
# Kinetics


def kinetics_csv(folder: Path, rows: list[tuple], split_column: bool = True) -> Path:
    header = "label,youtube_id,time_start,time_end" + (",split" if split_column else "")
    body = [",".join(str(c) for c in (row if split_column else row[:4])) for row in rows]
    path = folder / "kinetics.csv"
    path.write_text("\n".join([header, *body]) + "\n")
    return path


K_ROWS = [
    ('"abseiling, rope"', "aaa", 14, 24, "train"),
    ('"abseiling, rope"', "bbb", 0, 10, "train"),
    ("zumba", "ccc", 5, 15, "train"),
    ("zumba", "ddd", 120, 130, "train"),
    ("zumba", "eee", 3, 13, "val"),
    ('"abseiling, rope"', "fff", 7, 17, "val"),
]


def test_kinetics_names_and_split_column(tmp_path):
    videos = tmp_path / "videos"
    for _, yid, start, end, _ in K_ROWS:
        touch(videos / f"{yid}_{start:06d}_{end:06d}.mp4")
    csv = kinetics_csv(tmp_path, K_ROWS)
    train = open_dataset(csv, "train", root=videos)
    assert train.classes == ["abseiling, rope", "zumba"]
    assert names(train) == ["aaa_000014_000024.mp4", "bbb_000000_000010.mp4", "ccc_000005_000015.mp4",
                            "ddd_000120_000130.mp4"]  # fmt: skip
    assert train.targets == [0, 0, 1, 1]
    val = open_dataset(csv, None, root=videos)  # the split column has val rows: eval's default
    assert names(val) == ["eee_000003_000013.mp4", "fff_000007_000017.mp4"] and val.targets == [1, 0]
    assert all(os.path.dirname(s.path) == str(videos) for s in val.samples)
    # default root: the CSV's folder
    with pytest.raises(FileNotFoundError, match=r"4 of 4 listed videos do not exist"):
        open_dataset(csv, "train")


def test_kinetics_missing_files_are_refused_by_name_or_skipped_with_a_count(tmp_path):
    for _, yid, start, end, _ in K_ROWS[:3]:
        touch(tmp_path / f"{yid}_{start:06d}_{end:06d}.mp4")
    csv = kinetics_csv(tmp_path, K_ROWS)
    with pytest.raises(FileNotFoundError) as info:
        open_dataset(csv, "train")
    message = str(info.value)
    assert str(csv) in message and "1 of 4" in message and "ddd_000120_000130.mp4" in message
    assert "skip" in message and "\n" not in message
    ds = open_dataset(csv, "train", skip_missing=True)
    assert len(ds) == 3 and [os.path.basename(p) for p in ds.missing] == ["ddd_000120_000130.mp4"]


def test_kinetics_without_split_column_is_split_automatically(tmp_path):
    for _, yid, start, end, _ in K_ROWS:
        touch(tmp_path / f"{yid}_{start:06d}_{end:06d}.mp4")
    csv = kinetics_csv(tmp_path, K_ROWS, split_column=False)
    train, val = open_dataset(csv, "train"), open_dataset(csv, "val")
    assert len(train) == 4 and len(val) == 2 and sorted(val.targets) == [0, 1]
    assert len(open_dataset(csv, None)) == 6


def test_kinetics_bad_rows_are_named(tmp_path):
    csv = tmp_path / "k.csv"
    csv.write_text("label,youtube_id,time_start,time_end,split\nzumba,abc,1.5,10,train\n")
    with pytest.raises(AnnotationError, match=r"k.csv:2: time_start: expected whole seconds >= 0, got '1.5'"):
        open_dataset(csv, "all")
    csv.write_text("label,youtube_id,time_start,time_end,split\nzumba,abc,1,10,holdout\n")
    with pytest.raises(AnnotationError, match=r"k.csv:2: split: expected .* got 'holdout'"):
        open_dataset(csv, "all")


def test_a_kinetics_clip_decodes(tmp_path):
    write_video(tmp_path / "xyz_000001_000002.mp4", random_frames(5, 9, 20, 22))
    csv = tmp_path / "k.csv"
    csv.write_text("label,youtube_id,time_start,time_end\nzumba,xyz,1,2\n")
    ds = open_dataset(csv, "all", num_frames=4, stride=2, processor=PROC)
    pixel_values, label = ds[0]
    assert pixel_values.shape == (4, 3, 16, 16) and label == 0 and pixel_values.dtype == torch.float32


# ---------------------------------------------------------------------------------------------------------------------
# Something-Something v2


def ssv2(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    labels = {"Putting something on something": "1", "Pushing something from left to right": "0"}
    (folder / "labels.json").write_text(json.dumps(labels))
    item = lambda i, template: {"id": str(i), "label": f"thing {i}", "template": template, "placeholders": ["x"]}
    put, push = "Putting [something] on [something]", "Pushing [something] from left to right"
    (folder / "train.json").write_text(json.dumps([item(1, put), item(2, push), item(3, put), item(4, push)]))
    (folder / "validation.json").write_text(json.dumps([item(10, push), item(11, put)]))
    return folder


def test_ssv2_templates_name_the_classes(tmp_path):
    folder = ssv2(tmp_path / "ssv2")
    videos = tmp_path / "webm"
    for i in (1, 2, 3, 4, 10, 11):
        touch(videos / f"{i}.webm")
    train = open_dataset(folder / "labels.json", "train", root=videos)
    assert train.classes == ["Pushing something from left to right", "Putting something on something"]
    assert names(train) == ["1.webm", "2.webm", "3.webm", "4.webm"] and train.targets == [1, 0, 1, 0]
    val = open_dataset(folder, None, root=videos)  # the folder holding labels.json; eval's default: validation.json
    assert names(val) == ["10.webm", "11.webm"] and val.targets == [0, 1]
    one_list = open_dataset(folder / "validation.json", "all", root=videos)  # labels.json beside it
    assert one_list.targets == [0, 1] and one_list.class_to_idx == train.class_to_idx
    with pytest.raises(FileNotFoundError, match=r"4 of 4 listed videos do not exist"):
        open_dataset(folder / "labels.json", "train")  # default root: the JSON's folder


def test_ssv2_unknown_template_is_named(tmp_path):
    folder = ssv2(tmp_path)
    (folder / "validation.json").write_text(json.dumps([{"id": "5", "template": "Dropping [something]"}]))
    with pytest.raises(DatasetSpecError, match=r"validation.json: item 0: class 'Dropping something'"):
        open_dataset(folder / "validation.json", "all")


# ---------------------------------------------------------------------------------------------------------------------
# errors


def test_what_fits_no_form_is_refused_in_one_line_naming_the_file(tmp_path):
    binary = tmp_path / "clip.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    json_number = tmp_path / "odd.json"
    json_number.write_text("42")
    for path in (binary, json_number):
        with pytest.raises(DatasetSpecError) as info:
            open_dataset(path, "all")
        message = str(info.value)
        assert message.startswith(str(path)) and "\n" not in message
        assert "class folder" in message and "Kinetics CSV" in message and "JSON" in message
    with pytest.raises(DatasetSpecError, match=r"broken.json: not readable JSON"):
        (tmp_path / "broken.json").write_text("[{")
        open_dataset(tmp_path / "broken.json", "all")
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such dataset folder or file"):
        open_dataset(tmp_path / "nowhere", "all")
    with pytest.raises(ValueError, match=r"split: expected one of .* got 'dev'"):
        open_dataset(tmp_path, "dev")


# ---------------------------------------------------------------------------------------------------------------------
# the commands


def test_train_val_data_names_the_validation_set(tmp_path):
    from vivit.training.train import build_datasets, parse_args

    class_tree(tmp_path / "train", {"a": 2, "b": 1})  # one clip of b: fine, no automatic split with --val-data
    (tmp_path / "val.csv").write_text("path,label\ntrain/a/a0.mp4,b\ntrain/a/a1.mp4,a\n")
    shape = dict(num_frames=4, image_size=16, num_channels=3)
    args = parse_args(["--data", str(tmp_path / "train"), "--val-data", str(tmp_path / "val.csv")])
    train, val, classes = build_datasets(args, shape)
    assert classes == ["a", "b"] and len(train) == 3 and val.targets == [1, 0]
    with pytest.raises(DatasetSpecError, match="class 'b' has 1 clip"):
        build_datasets(parse_args(["--data", str(tmp_path / "train")]), shape)


def test_loader_workers_default(tmp_path):
    from vivit.data.synthetic import SyntheticMotion
    from vivit.training.train import default_workers, make_loader, parse_args

    assert parse_args([]).workers is None
    expected = min(8, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else None
    assert default_workers() == (expected or min(8, os.cpu_count()))
    dataset = open_dataset(class_tree(tmp_path, {"a": 2}), "all")
    loader = make_loader(dataset, batch_size=1, train=False, seed=0, workers=None, rank=0, world=1)
    # workers restart each epoch, seeded from (seed, epoch, rank): resumable, unlike persistent workers
    assert loader.num_workers == default_workers() and not loader.persistent_workers and loader.prefetch_factor == 2
    synthetic = make_loader(SyntheticMotion(4), batch_size=1, train=False, seed=0, workers=None, rank=0, world=1)
    assert synthetic.num_workers == 0


def test_vivit_train_on_a_plain_class_folder(tmp_path, capsys):
    """`vivit train --data FOLDER` with no split folders: the automatic split, end to end on encoded clips."""
    from vivit.cli import main as cli
    from vivit.models.modeling import VivitForVideoClassification

    root = tmp_path / "evalset"
    for c, label in enumerate(("jumping", "waving")):
        (root / label).mkdir(parents=True)
        for i in range(4):
            write_video(root / label / f"{i}.mp4", random_frames(10 * c + i, 9, 20, 22))
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    argv = [
        "train", "--config", str(tmp_path / "tiny.json"), "--data", str(root), "--val-fraction", "0.25",
        "--batch-size", "2", "--epochs", "1", "--workers", "0", "--output-dir", str(tmp_path / "run"), "--no-progress",
    ]  # fmt: skip
    assert cli(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epochs"] == 1 and 0.0 <= summary["val_top1"] <= 1.0
    model = VivitForVideoClassification.from_pretrained(summary["checkpoint"])
    assert model.config.id2label == {0: "jumping", 1: "waving"}


@pytest.mark.slow
def test_resume_with_loader_workers_is_bit_identical(tmp_path, capsys):
    """Random crops and flips drawn inside two worker processes: a run cut after epoch 1 and resumed ends with the
    same weights as the uninterrupted run."""
    from safetensors.torch import load_file

    from vivit.cli import main as cli

    root = tmp_path / "clips"
    for c, label in enumerate(("jumping", "waving")):
        (root / label).mkdir(parents=True)
        for i in range(4):
            write_video(root / label / f"{i}.mp4", random_frames(20 * c + i, 9, 20, 22))
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))

    def train(out, *extra):
        argv = [
            "train", "--config", str(tmp_path / "tiny.json"), "--data", str(root), "--val-fraction", "0.25",
            "--batch-size", "2", "--epochs", "2", "--workers", "2", "--output-dir", str(out), "--no-progress", *extra,
        ]  # fmt: skip
        assert cli(argv) == 0, capsys.readouterr().err
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    full = train(tmp_path / "full")
    train(tmp_path / "cut", "--stop-after-epochs", "1")
    resumed = train(tmp_path / "cut", "--resume", str(tmp_path / "cut"))
    a = load_file(Path(full["checkpoint"]) / "model.safetensors")
    b = load_file(Path(resumed["checkpoint"]) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_open_dataset_is_exported():
    import vivit

    assert vivit.open_dataset is open_dataset and vivit.DatasetSpecError is DatasetSpecError
    assert "open_dataset" in vivit.__all__


def test_vivit_eval_reads_a_kinetics_csv_and_its_split(tmp_path, capsys):
    from vivit.cli import main as cli
    from vivit.models.configuration import VivitConfig
    from vivit.models.modeling import VivitForVideoClassification

    config = VivitConfig(**{**TINY, "backend": "eager"}, id2label={0: "walk", 1: "jump"})
    VivitForVideoClassification(config).save_pretrained(tmp_path / "model")
    PROC.save_pretrained(tmp_path / "model")
    rows = [("walk", "w1", 0, 10, "train"), ("jump", "j1", 0, 10, "train"), ("jump", "j2", 5, 15, "val")]
    rows += [("walk", "gone", 1, 11, "val")]
    for _, yid, start, end, _ in rows[:3]:
        write_video(tmp_path / f"{yid}_{start:06d}_{end:06d}.mp4", random_frames(len(yid) + start, 6))
    csv = kinetics_csv(tmp_path, rows)

    def run(*extra):
        code = cli(["eval", "--model", str(tmp_path / "model"), "--data", str(csv), "--workers", "0", "--json",
                    "--no-progress", *extra])  # fmt: skip
        out, err = capsys.readouterr()
        return code, (json.loads(out.strip().splitlines()[-1]) if code == 0 else None), err

    code, _, err = run()
    assert code == 1 and f"{csv}: 1 of 2 listed videos do not exist" in err and "gone_000001_000011.mp4" in err
    code, result, err = run("--skip-missing")  # the val rows by default, less the missing one, counted
    assert code == 0 and result["num_samples"] == 1 and "skipped 1 missing videos" in err
    code, result, _ = run("--split", "train")
    assert code == 0 and result["num_samples"] == 2
    code, _, err = run("--split", "test")
    assert code == 1 and f"{csv}: no test split (splits: train, val)" in err


@pytest.mark.slow
def test_readme_recipe_fine_tunes_an_hf_checkpoint_on_a_kinetics_csv(tmp_path, capsys):
    """The README's fine-tuning command at a tiny scale: an HF ViViT directory, a Kinetics-style CSV with its videos
    in another folder, `--val-data`, the VideoMAE recipe, layer decay and mixup/cutmix, end to end."""
    from vivit.cli import main as cli
    from vivit.models.configuration import VivitConfig
    from vivit.models.modeling import VivitForVideoClassification

    config = VivitConfig(**TINY, id2label={0: "a", 1: "b", 2: "c"})  # a 3-class "pretrained" model
    VivitForVideoClassification(config).save_pretrained(tmp_path / "hf")
    PROC.save_pretrained(tmp_path / "hf")
    train_rows = [(label, f"{label}{i}", 10 * i, 10 * i + 10, "train") for label in ("walk", "jump") for i in range(3)]
    val_rows = [(label, f"v{label}", 0, 10, "validate") for label in ("walk", "jump")]
    for folder, rows in (("train", train_rows), ("val", val_rows)):
        (tmp_path / folder).mkdir()
        for _, yid, start, end, _ in rows:
            write_video(tmp_path / folder / f"{yid}_{start:06d}_{end:06d}.mp4", random_frames(len(yid) + start, 9))
    (tmp_path / "lists").mkdir()
    train_csv = kinetics_csv(tmp_path / "lists", train_rows).rename(tmp_path / "lists" / "train.csv")
    val_csv = kinetics_csv(tmp_path / "lists", val_rows).rename(tmp_path / "lists" / "validate.csv")
    argv = [
        "train", "--init", str(tmp_path / "hf"), "--data", str(train_csv), "--root", str(tmp_path / "train"),
        "--val-data", str(val_csv), "--val-root", str(tmp_path / "val"), "--epochs", "1", "--batch-size", "2",
        "--lr", "5e-4", "--min-lr", "1e-6", "--weight-decay", "0.05", "--layer-decay", "0.75", "--drop-path", "0.1",
        "--augment", "videomae", "--mixup", "0.8", "--cutmix", "1.0", "--label-smoothing", "0.1",
        "--workers", "0", "--output-dir", str(tmp_path / "run"), "--no-progress",
    ]  # fmt: skip
    assert cli(argv) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    model = VivitForVideoClassification.from_pretrained(summary["checkpoint"])
    assert model.config.id2label == {0: "jump", 1: "walk"}  # the data's classes: a new head
