"""VideoFolder / VideoCSV datasets and the clip transforms, on videos the test encodes itself."""

import pytest
import torch
from _helpers import random_frames
from torch.utils.data import DataLoader

from vivit.data.datasets import VideoCSV, VideoFolder
from vivit.data.io import VideoReadError, read_clips, read_video, write_video
from vivit.data.processing import VivitImageProcessor
from vivit.data.transforms import EvalTransform, TrainTransform, parse_views

PROC = VivitImageProcessor(size={"shortest_edge": 18}, crop_size=16)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf")
    for c, name in enumerate(["walk", "jump"]):
        (root / name).mkdir()
        for i in range(3):
            write_video(root / name / f"v{i}.mp4", random_frames(10 * c + i, 11 + 2 * i), codec="libx264")
    (root / "jump" / "notes.txt").write_text("not a video")
    return root


def test_video_folder_eval_single_view(folder):
    ds = VideoFolder(folder, num_frames=4, stride=2, processor=PROC)
    assert ds.classes == ["jump", "walk"] and len(ds) == 6
    assert ds.targets == [0, 0, 0, 1, 1, 1]
    pixel_values, label = ds[4]
    assert label == 1 and pixel_values.shape == (4, 3, 16, 16) and pixel_values.dtype == torch.float32
    clip = read_video(folder / "walk" / "v1.mp4", 4, stride=2)
    torch.testing.assert_close(pixel_values, PROC(clip, return_tensors="pt").pixel_values[0], rtol=0, atol=0)


def test_video_folder_multiview_order(folder):
    ds = VideoFolder(folder, num_frames=3, stride=2, processor=PROC, views="2x3")
    pixel_values, _ = ds[2]
    assert pixel_values.shape == (6, 3, 3, 16, 16)
    clips = read_clips(folder / "jump" / "v2.mp4", 3, 2, stride=2)
    for k in range(2):  # views are (clip, crop) ordered; crop 1 of 3 is the center crop
        ref = PROC(clips[k], return_tensors="pt").pixel_values[0]
        torch.testing.assert_close(pixel_values[3 * k + 1], ref, rtol=0, atol=0)
    # frames are 18 x 30 after the resize: crops at left 0, 7, 14
    resized = torch.from_numpy(clips[0]).permute(0, 3, 1, 2)
    resized = torch.nn.functional.interpolate(resized, size=(18, 30), mode="bilinear", antialias=True)
    left = PROC(resized[..., 1:17, 0:16], return_tensors="pt", do_resize=False).pixel_values[0]
    right = PROC(resized[..., 1:17, 14:30], return_tensors="pt", do_resize=False).pixel_values[0]
    torch.testing.assert_close(pixel_values[0], left, rtol=0, atol=0)
    torch.testing.assert_close(pixel_values[2], right, rtol=0, atol=0)


def test_train_transform_augments():
    clip = random_frames(0, 5, 30, 50)
    transform = TrainTransform(PROC, scale_range=(16, 24), flip_p=0.5)
    outs = [transform(clip) for _ in range(8)]
    assert all(o.shape == (5, 3, 16, 16) and o.dtype == torch.float32 for o in outs)
    assert all(o.min() >= -3 and o.max() <= 1 for o in outs)
    assert len({o.sum().item() for o in outs}) > 1  # random crops/scales/flips differ
    flipped = TrainTransform(PROC, scale_range=(16, 16), flip_p=1.0)
    plain = TrainTransform(PROC, scale_range=(16, 16), flip_p=0.0)
    torch.manual_seed(3)
    a = flipped(clip)
    torch.manual_seed(3)
    b = plain(clip)
    torch.testing.assert_close(a, b.flip(-1), rtol=0, atol=0)  # same scale and crop draw, mirrored
    with pytest.raises(ValueError, match="scale_range"):
        TrainTransform(PROC, scale_range=(8, 20))


def test_eval_transform_shapes_and_views_parsing():
    clips = random_frames(1, 6, 20, 44).reshape(2, 3, 20, 44, 3)
    assert EvalTransform(PROC, num_crops=3)(clips).shape == (6, 3, 3, 16, 16)
    assert EvalTransform(PROC)(clips[0]).shape == (3, 3, 16, 16)
    tall = random_frames(2, 2, 44, 20)
    views = EvalTransform(PROC, num_crops=3)(tall)
    assert views.shape == (3, 2, 3, 16, 16) and not torch.equal(views[0], views[2])  # crops along the height
    assert parse_views("4x3") == (4, 3) and parse_views((2, 1)) == (2, 1)
    for bad in ("4", "0x3", "axb"):
        with pytest.raises(ValueError, match="views"):
            parse_views(bad)


def test_train_dataset_with_workers(folder):
    ds = VideoFolder(folder, num_frames=4, stride=1, image_size=16, train=True)
    loader = DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    batches = list(loader)
    assert len(batches) == 2
    pixel_values, labels = batches[0]
    assert pixel_values.shape == (3, 4, 3, 16, 16) and labels.tolist() == [0, 0, 0]
    assert torch.isfinite(pixel_values).all()


def test_corrupt_file_reported_with_path(folder, tmp_path):
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    write_video(root / "a" / "good.mp4", random_frames(0, 6))
    (root / "a" / "broken.mp4").write_bytes(b"\x00" * 2000)
    ds = VideoFolder(root, num_frames=2, processor=PROC)
    with pytest.raises(VideoReadError, match="broken.mp4"):
        ds[0]
    loader = DataLoader(ds, batch_size=1, num_workers=1)
    with pytest.raises(VideoReadError, match="broken.mp4"):
        list(loader)


def test_video_csv_formats(folder, tmp_path):
    with_header = tmp_path / "train.csv"
    with_header.write_text(
        "label,path,time_start,time_end,split\n"
        f"walk,{folder}/walk/v0.mp4,0.0,0.4,train\n"
        f"jump,{folder}/jump/v2.mp4,0.08,0.6,train\n"
    )
    ds = VideoCSV(with_header, num_frames=3, processor=PROC)
    assert ds.classes == ["jump", "walk"] and ds.targets == [1, 0]
    assert ds.samples[1].start_sec == pytest.approx(0.08) and ds.samples[1].end_sec == pytest.approx(0.6)
    pixel_values, label = ds[1]
    clip = read_video(folder / "jump" / "v2.mp4", 3, stride=2, start_sec=0.08, end_sec=0.6)
    torch.testing.assert_close(pixel_values, PROC(clip, return_tensors="pt").pixel_values[0], rtol=0, atol=0)
    # a model's label2id fixes the indices
    ds = VideoCSV(with_header, num_frames=3, processor=PROC, class_to_idx={"walk": 0, "jump": 1, "run": 2})
    assert ds.targets == [0, 1] and ds.classes == ["walk", "jump", "run"]
    # headerless whitespace list with integer labels, paths relative to root
    listing = tmp_path / "list.txt"
    listing.write_text("walk/v1.mp4 4\n# a comment\njump/v0.mp4 2\n")
    ds = VideoCSV(listing, root=folder, num_frames=2, processor=PROC, views="2x1")
    assert ds.targets == [4, 2] and len(ds.classes) == 5
    assert ds[0][0].shape == (2, 2, 3, 16, 16)


def test_dataset_errors(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        VideoFolder(tmp_path / "missing")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(ValueError, match="no video files"):
        VideoFolder(tmp_path / "empty")
    bad = tmp_path / "bad.csv"
    bad.write_text("video_id,label\nx,1\n")
    with pytest.raises(ValueError, match="path column"):
        VideoCSV(bad)
    bad.write_text("onlyonecolumn\n")
    with pytest.raises(ValueError, match="expected 'path label"):
        VideoCSV(bad)
    with pytest.raises(ValueError, match="not in class_to_idx"):
        VideoFolder(folder, class_to_idx={"walk": 0})
    with pytest.raises(ValueError, match="views"):
        VideoFolder(folder, train=True, views="4x3")
