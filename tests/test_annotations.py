"""Annotation lists (one parser for CSV/TSV/space-separated, label checks), VideoFolder walking, `vivit eval` on
bad lists. Parsing tests need no video: `read_annotations` only reads the list."""

import csv
import os
import string
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vivit.data.datasets import (
    MAX_CLASSES,
    AnnotationError,
    VideoFolder,
    VideoSample,
    read_annotations,
    write_annotations,
)


def write(tmp_path, text, name="list.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_quoted_path_with_spaces_and_header(tmp_path):
    listing = write(tmp_path, 'path,label,start,end\n"my clips/a b.mp4",2,1.5,3\n"c,d.mp4",0,,\n')
    samples, mapping = read_annotations(listing)
    assert [s.path for s in samples] == [str(tmp_path / "my clips" / "a b.mp4"), str(tmp_path / "c,d.mp4")]
    assert [s.label for s in samples] == [2, 0] and len(mapping) == 3
    assert (samples[0].start_sec, samples[0].end_sec, samples[1].start_sec, samples[1].end_sec) == (
        1.5,
        3.0,
        None,
        None,
    )


def test_tsv_and_headerless_csv(tmp_path):
    tsv = write(tmp_path, "video\tclass\nwith space.mp4\tjump\nb.mp4\twalk\n", "list.tsv")
    samples, mapping = read_annotations(tsv, root="/data")
    assert [s.path for s in samples] == ["/data/with space.mp4", "/data/b.mp4"]
    assert mapping == {"jump": 0, "walk": 1} and [s.label for s in samples] == [0, 1]
    plain = write(tmp_path, "a.mp4,1\n# comment\n\nb.mp4,0,0.5,1.0\n")
    samples, _ = read_annotations(plain)
    assert [s.label for s in samples] == [1, 0] and samples[1].end_sec == 1.0


def test_whitespace_list_only_when_unambiguous(tmp_path):
    ok = write(tmp_path, "walk/v1.mp4 4\nwalk/v2.mp4 1 0.5 2.5\n", "ok.txt")
    samples, mapping = read_annotations(ok)
    assert [s.label for s in samples] == [4, 1] and len(mapping) == 5 and samples[1].start_sec == 0.5
    for text, line in [
        ("a.mp4 1\nmy clip.mp4 3\n", 2),  # three fields: a path with a space, or path label start?
        ("a.mp4 1\nmy long clip.mp4 3\n", 2),  # four fields whose start is not a number
        ("my clip.mp4 3 4\n", 1),  # reads as path 'my', label 'clip.mp4': refused, the label is a file name
        ('"my clip.mp4" 3\n', 1),  # quotes belong to CSV
    ]:
        bad = write(tmp_path, text, "bad.txt")
        with pytest.raises(AnnotationError, match=rf"bad\.txt:{line}: "):
            read_annotations(bad)


def test_integer_labels_checked_against_classes(tmp_path):
    listing = write(tmp_path, "path,label\na.mp4,1\nb.mp4,6\n")
    with pytest.raises(AnnotationError, match=r"list\.csv:3: label 6: expected a class index in \[0, 6\)"):
        read_annotations(listing, num_classes=6)
    with pytest.raises(AnnotationError, match=r"list\.csv:3: .*\[0, 3\)"):
        read_annotations(listing, class_to_idx={"x": 0, "y": 1, "z": 2})
    assert [s.label for s in read_annotations(listing, num_classes=7)[0]] == [1, 6]
    huge = write(tmp_path, f"a.mp4,1\nb.mp4,{10_000_000}\n", "huge.csv")
    with pytest.raises(AnnotationError, match=rf"huge\.csv:2: .*\[0, {MAX_CLASSES}\).*got 10000000"):
        read_annotations(huge)
    big = write(tmp_path, f"a.mp4,{MAX_CLASSES + 1}\n", "big.csv")
    with pytest.raises(AnnotationError, match=rf"big\.csv:1: .*got {MAX_CLASSES + 1}"):
        read_annotations(big)
    samples, mapping = read_annotations(big, num_classes=MAX_CLASSES + 2)  # a class count saying so allows it
    assert samples[0].label == MAX_CLASSES + 1 and len(mapping) == MAX_CLASSES + 2
    negative = write(tmp_path, "a.mp4,-1\n", "neg.csv")
    with pytest.raises(AnnotationError, match=r"neg\.csv:1: label -1"):
        read_annotations(negative)


def test_mixed_and_unknown_labels(tmp_path):
    mixed = write(tmp_path, "path,label\na.mp4,1\nb.mp4,2\nc.mp4,jump\n")
    with pytest.raises(AnnotationError, match=r"list\.csv:4: the label 'jump' is text but line 2's \('1'\)"):
        read_annotations(mixed)
    text = write(tmp_path, "path,label\na.mp4,walk\nb.mp4,fly\n", "text.csv")
    with pytest.raises(AnnotationError, match=r"text\.csv:3: label 'fly' is not a known class"):
        read_annotations(text, class_to_idx={"walk": 0, "run": 1})
    samples, mapping = read_annotations(text, class_to_idx={"walk": 0, "fly": 1})
    assert [s.label for s in samples] == [0, 1]


def test_structural_errors_name_the_line(tmp_path):
    for text, match in [
        ("", "empty"),
        ("path,label\n", "no annotations after the header"),
        ("video_id,label\nx,1\n", "path column"),
        ("a.mp4,1\nb.mp4\n", ":2: expected 'path label"),
        ("a.mp4,1,0,1,extra\n", ":1: expected 'path label"),
        ("a.mp4,1,x\n", ":1: start: expected seconds"),
        ("a.mp4,1,2,1\n", ":1: expected end > start"),
        ("a.mp4,1,nan\n", ":1: start: expected finite"),
        (",1\n", ":1: expected a video path"),
        ("path x label\na.mp4 1\n", ":2: expected 'path label"),
        ('"a.mp4,1\n', ":1: malformed CSV"),
    ]:
        with pytest.raises(AnnotationError, match=match):
            read_annotations(write(tmp_path, text))
    (tmp_path / "bin.csv").write_bytes(b"a.mp4,\xff\xfe\n")
    with pytest.raises(AnnotationError, match="bin.csv: expected UTF-8"):
        read_annotations(tmp_path / "bin.csv")


# --- property-based: the parser fails only with its own error, and lists it writes read back unchanged ----------

CSV_ALPHABET = string.ascii_letters + string.digits + " ,;\t\"'#-+._/\\\n\r" + "é\x00\x0b"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(alphabet=CSV_ALPHABET, max_size=200), st.text(max_size=200)))
def test_random_content_fails_only_with_annotation_error(tmp_path, text):
    path = tmp_path / "random.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        samples, mapping = read_annotations(path)
    except AnnotationError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
        return
    assert samples and all(0 <= s.label < len(mapping) <= MAX_CLASSES for s in samples)


TOKENS = ["path", "label", "video", "class", "start", "end", "time_start", "a.mp4", "1", "7", "x", "-2", "0.5", "nan"]
table = st.lists(st.lists(st.sampled_from(TOKENS + ['"q r"', "", "#"]), min_size=0, max_size=6), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=table, separator=st.sampled_from([" ", ",", "\t", "  "]))
def test_random_tables_fail_only_with_annotation_error(tmp_path, rows, separator):
    """Header words, numbers and file names in every layout: the structure, not the characters, is random."""
    path = tmp_path / "table.txt"
    path.write_text("\n".join(separator.join(cells) for cells in rows), encoding="utf-8")
    try:
        samples, mapping = read_annotations(path)
    except AnnotationError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
        return
    assert samples and all(0 <= s.label < len(mapping) for s in samples)


path_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\r"), min_size=1, max_size=30
).filter(lambda p: p == p.strip() and not os.path.isabs(p))
seconds = st.one_of(st.none(), st.floats(min_value=0, max_value=1e6, allow_nan=False))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(path_text, st.integers(0, 50), seconds, seconds), min_size=1, max_size=12),
    names=st.one_of(
        st.none(),
        st.lists(
            st.text(
                alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\r"),
                min_size=1,
                max_size=12,
            ).filter(lambda s: s == s.strip() and not s.lstrip("+-").isdigit()),
            min_size=51,
            max_size=51,
            unique=True,
        ),
    ),
)
def test_written_lists_read_back(tmp_path, rows, names):
    samples = []
    for path, label, a, b in rows:
        start, end = (a, b) if a is None or b is None or a < b else (None, None)
        samples.append(VideoSample(path, label, start, end))
    listing = tmp_path / "round.csv"
    write_annotations(listing, samples, classes=names)
    class_to_idx = None if names is None else {n: i for i, n in enumerate(names)}
    back, _ = read_annotations(listing, root="/r", class_to_idx=class_to_idx, num_classes=51)
    assert [s.path for s in back] == [os.path.join("/r", s.path) for s in samples]
    assert [s.label for s in back] == [s.label for s in samples]
    assert [(s.start_sec, s.end_sec) for s in back] == [(s.start_sec, s.end_sec) for s in samples]
    with open(listing, newline="", encoding="utf-8") as f:  # any CSV reader reads the same table
        assert [r[0] for r in csv.reader(f)][1:] == [s.path for s in samples]


# --- VideoFolder walking -------------------------------------------------------------------------------------------


def test_video_folder_link_loops_are_skipped(tmp_path):
    root = tmp_path / "data"
    (root / "walk" / "sub").mkdir(parents=True)
    (root / "walk" / "a.mp4").write_bytes(b"")
    (root / "walk" / "sub" / "b.mp4").write_bytes(b"")
    os.symlink(root / "walk", root / "walk" / "sub" / "loop1")  # two links back to the class folder
    os.symlink(root / "walk", root / "walk" / "loop2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = VideoFolder(root, processor=object(), transform=lambda x: x)
    assert [os.path.relpath(s.path, root) for s in ds.samples] == ["walk/a.mp4", "walk/sub/b.mp4"]
    assert len(caught) == 2 and all("already listed" in str(w.message) for w in caught)


def test_video_folder_refuses_fifo(tmp_path):
    root = tmp_path / "data"
    (root / "walk").mkdir(parents=True)
    (root / "walk" / "a.mp4").write_bytes(b"")
    os.mkfifo(root / "walk" / "pipe.mp4")
    with pytest.raises(ValueError, match=r"pipe\.mp4: expected a regular video file, got a FIFO"):
        VideoFolder(root, processor=object(), transform=lambda x: x)


# --- `vivit eval` on lists that do not fit the model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    from vivit.data.processing import VivitImageProcessor
    from vivit.models.configuration import VivitConfig
    from vivit.models.modeling import VivitForVideoClassification

    root = tmp_path_factory.mktemp("model")
    tiny = dict(image_size=16, num_frames=4, tubelet_size=[2, 8, 8], hidden_size=16, num_hidden_layers=1)
    torch.manual_seed(0)
    config = VivitConfig(**tiny, num_attention_heads=2, intermediate_size=24, id2label={0: "walk", 1: "jump", 2: "run"})
    VivitForVideoClassification(config).save_pretrained(root)
    VivitImageProcessor(size={"shortest_edge": 18}, crop_size=16).save_pretrained(root)
    return root


@pytest.mark.parametrize(
    "text, message",
    [
        ("path,label\na.mp4,1\nb.mp4,3\n", r"val\.csv:3: label 3: expected a class index in \[0, 3\)"),
        ("path,label\na.mp4,1\nb.mp4,run\n", r"val\.csv:3: the label 'run' is text but line 2's"),
        ("path,label\na.mp4,fly\n", r"val\.csv:2: label 'fly' is not a known class"),
        ("a.mp4 1\nmy clip.mp4 2\n", r"val\.csv:2: expected 'path label'"),
    ],
)
def test_eval_refuses_lists_that_do_not_fit_the_model(model_dir, tmp_path, capsys, text, message):
    import re

    from vivit.cli import main as cli

    listing = write(tmp_path, text, "val.csv")
    code = cli(["eval", "--model", str(model_dir), "--data", str(listing), "--workers", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and re.search(message, err), err


def test_evaluate_refuses_labels_beyond_the_logits():
    import torch

    from vivit.cli.evaluate import evaluate

    class Fixed(torch.nn.Module):
        def forward(self, pixel_values):
            return type("Out", (), {"logits": torch.zeros(pixel_values.shape[0], 3)})()

    batch = (torch.zeros(2, 1, 1, 1, 1), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 3\).*got 5"):
        evaluate(Fixed(), [batch], progress=False)


def test_predict_refuses_a_fifo_at_once(model_dir, tmp_path, capsys):
    from vivit.cli import main as cli

    fifo = tmp_path / "stream.mp4"
    os.mkfifo(fifo)
    code = cli(["predict", str(fifo), "--model", str(model_dir)])
    err = capsys.readouterr().err
    # refused when the arguments are read, before anything opens it (opening a FIFO would block)
    assert code == 2 and err.count("\n") == 1 and "stream.mp4' (a FIFO)" in err, err


def test_video_folder_lists_nested_folders_like_os_walk(tmp_path):
    root = tmp_path / "data"
    for rel in ["walk/b.mp4", "walk/a.MP4", "walk/z/c.mp4", "walk/m/n/d.mkv", "walk/m/e.avi", "walk/m/notes.txt"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    expected = []
    for dirpath, dirnames, filenames in os.walk(root / "walk"):
        dirnames.sort()
        expected += [os.path.join(dirpath, f) for f in sorted(filenames) if not f.endswith(".txt")]
    ds = VideoFolder(root, processor=object(), transform=lambda x: x)
    assert [s.path for s in ds.samples] == expected and len(expected) == 5
