"""Checkpoint file checks: safetensors headers, shard indexes in local directories and in the Hub cache."""

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import vivit.training.checkpointing as ckpt
from vivit import VivitConfig, VivitForVideoClassification
from vivit.models.checkpoint_files import CheckpointFileError, check_safetensors

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(image_size=32, num_frames=8, tubelet_size=[2, 16, 16], hidden_size=32, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=64, num_labels=3)  # fmt: skip


def raw_file(path: Path, header, data: bytes = b"") -> Path:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    "header, data, match",
    [
        ({"a": F32_2}, b"\0" * 7, r"tensors cover 8 bytes of data but the file holds 7"),
        ({"a": F32_2}, b"\0" * 9, r"tensors cover 8 bytes of data but the file holds 9"),
        ({"a": F32_2, "b": {**F32_2, "data_offsets": [4, 12]}}, b"\0" * 12, r"tensor 'b' starts at byte 4, expected 8"),
        ({"a": {**F32_2, "shape": [3]}}, b"\0" * 8, r"tensor 'a': data_offsets \[0, 8\] do not hold a F32 .*\[3\]"),
        ({"a": {**F32_2, "data_offsets": [8, 0]}}, b"", r"data_offsets \[8, 0\] do not hold"),
        ({"a": {**F32_2, "shape": [True, 2]}}, b"\0" * 8, r"shape must be a list of integers >= 0"),
        ({"a": {**F32_2, "shape": [-2]}}, b"\0" * 8, r"shape must be a list of integers >= 0"),
        ({"a": {**F32_2, "dtype": "F33"}}, b"\0" * 8, r"tensor 'a': dtype must be one of .*got 'F33'"),
        ({"a": {**F32_2, "extra": 1}}, b"\0" * 8, r"must have exactly dtype, shape and data_offsets"),
        ({"a": F32_2, "__metadata__": {"format": 1}}, b"\0" * 8, r"__metadata__ must map strings to strings"),
        (b'{"a": 1, "a": 2}', b"", r"header is not valid JSON \(key 'a' appears twice\)"),
        (b"[1]", b"", r"header does not start with a JSON object"),
        (b"{" * 5000 + b"}" * 5000, b"", r"header is not valid JSON|must have exactly"),
    ],
)
def test_corrupt_headers_one_line_naming_the_file(tmp_path, header, data, match):
    path = raw_file(tmp_path / "x.safetensors", header, data)
    with pytest.raises(CheckpointFileError, match=match) as info:
        check_safetensors(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_header_length_and_short_files(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"\1\2\3")
    with pytest.raises(CheckpointFileError, match="3 bytes, too short"):
        check_safetensors(path)
    path.write_bytes(struct.pack("<Q", 2**63) + b"{}")
    with pytest.raises(CheckpointFileError, match=f"header length {2**63} does not fit the file"):
        check_safetensors(path)


def test_files_safetensors_writes_pass(tmp_path):
    tensors = {"a": torch.zeros(2, 3), "b": torch.ones(0), "c": torch.arange(5, dtype=torch.int64)}
    save_file(tensors, tmp_path / "x.safetensors", metadata={"format": "pt"})
    assert set(check_safetensors(tmp_path / "x.safetensors")) == {"a", "b", "c", "__metadata__"}


def test_corrupt_trainer_state_is_a_checkpoint_error(tmp_path):
    ckpt.save_state(tmp_path, "trainer_state", {"step": 3, "w": torch.ones(2)})
    assert ckpt.load_state(tmp_path, "trainer_state")["step"] == 3
    (tmp_path / "trainer_state.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(ckpt.CheckpointError, match="trainer_state.safetensors: header length"):
        ckpt.load_state(tmp_path, "trainer_state")


def _hub_cache(cache: Path, repo: str, source: Path) -> Path:
    """huggingface_hub's cache layout, as it writes it: snapshot files are links into the repository's blobs."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = cache / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / commit
    (folder / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for i, file in enumerate(sorted(source.iterdir())):
        blob = folder / "blobs" / f"{i:040x}"
        shutil.copyfile(file, blob)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sharded")
    torch.manual_seed(0)
    VivitForVideoClassification(VivitConfig(**TINY)).save_pretrained(directory, max_shard_size="20KB")
    return directory


def test_hub_cache_links_into_blobs_load_and_escapes_are_refused(tmp_path, sharded):
    cache = tmp_path / "hub"
    _hub_cache(cache, "org/good", sharded)
    model = VivitForVideoClassification.from_pretrained("org/good", cache_dir=cache, local_files_only=True)
    assert model.config.num_labels == 3
    # a repository whose index names a file of another repository's cache through a link in its snapshot
    snapshot = _hub_cache(cache, "org/bad", sharded)
    other = next((cache / "models--org--good" / "blobs").iterdir())
    os.symlink(other, snapshot / "stolen.safetensors")
    index = snapshot / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    key = next(iter(data["weight_map"]))
    data["weight_map"][key] = "stolen.safetensors"
    index.unlink()  # a real file now, instead of the link into blobs
    index.write_text(json.dumps(data))
    with pytest.raises(CheckpointFileError, match=r"weight_map entry 'stolen.safetensors' resolves outside"):
        VivitForVideoClassification.from_pretrained("org/bad", cache_dir=cache, local_files_only=True)


@pytest.mark.slow  # a fresh interpreter importing transformers: seconds
def test_offline_hf_home_cache_index_escape_refused(tmp_path, sharded):
    """As a user runs it: HF_HOME pointing at a cache, HF_HUB_OFFLINE=1, a Hub id whose index names ../.."""
    snapshot = _hub_cache(tmp_path / "hf_home" / "hub", "org/escape", sharded)
    index = snapshot / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"][next(iter(data["weight_map"]))] = "../../../../../secret.safetensors"
    index.unlink()
    index.write_text(json.dumps(data))
    code = (
        "import vivit\n"
        "from vivit.models.checkpoint_files import CheckpointFileError\n"
        "try:\n"
        "    vivit.VivitForVideoClassification.from_pretrained('org/escape')\n"
        "except CheckpointFileError as e:\n"
        "    print('REFUSED', e)\n"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_CACHE", None), env.pop("TRANSFORMERS_CACHE", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"REFUSED {index}: weight_map entry '../../../../../secret.safetensors'" in out.stdout


def test_image_vit_and_trainer_weights_checked_before_reading(tmp_path):
    from vivit.models import vit_init
    from vivit.training import train

    corrupt = raw_file(tmp_path / "model.safetensors", {"w": F32_2}, b"\0" * 4)
    with pytest.raises(CheckpointFileError, match=f"^{corrupt}: tensors cover 8 bytes of data but the file holds 4$"):
        vit_init._read_file(corrupt)
    with pytest.raises(CheckpointFileError, match=f"^{corrupt}: tensors cover 8 bytes"):
        train.load_weights(torch.nn.Linear(2, 2), tmp_path)
