"""Fuzzing checkpoint files given to from_pretrained: mutated safetensors bytes and shard indexes either load or give
a one-line error, and never make it open a file outside the checkpoint directory (a sentinel checkpoint sits next to
it: its weights are all 7, and Python-level opens of it are recorded). Counts per target print with `pytest -s`."""

import collections
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from vivit import VivitConfig, VivitForVideoClassification
from vivit.models.checkpoint_files import CheckpointFileError

TINY = dict(image_size=32, num_frames=8, tubelet_size=[2, 16, 16], hidden_size=32, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=64, num_labels=3)  # fmt: skip
SENTINEL_VALUE = 7.0
COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
OPENED: list[str] = []


def _audit(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one only appends names to a list


@pytest.fixture(scope="module")
def workspace():
    """template/single (model.safetensors), template/sharded (index + 3 shards), outside/ with the sentinels."""
    root = Path(tempfile.mkdtemp(prefix="vivit-fuzz-"))
    torch.manual_seed(0)
    model = VivitForVideoClassification(VivitConfig(**TINY))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(root / "single")
        model.save_pretrained(root / "sharded", max_shard_size="20KB")
    outside = root / "outside"
    outside.mkdir()
    names = {**json.loads((root / "sharded" / "model.safetensors.index.json").read_text())["weight_map"]}
    save_file({k: torch.full_like(v, SENTINEL_VALUE) for k, v in _classic_state(root / "single").items()},
              outside / "sentinel.safetensors")  # fmt: skip
    torch.save({k: torch.full((1,), SENTINEL_VALUE) for k in names}, outside / "sentinel.bin")
    yield root
    shutil.rmtree(root)
    for target, counts in sorted(COUNTS.items()):
        print(f"\n{target}: " + ", ".join(f"{k} {counts[k]}" for k in ("tried", "loaded", "clear error", "crash")))


def _classic_state(directory: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(directory / "model.safetensors")


def load_and_classify(target: str, directory: Path, outside: Path) -> None:
    """from_pretrained(directory): a model whose weights never come from `outside`, or a one-line clear error."""
    COUNTS[target]["tried"] += 1
    OPENED.clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = VivitForVideoClassification.from_pretrained(directory)
    except (ValueError, OSError, TypeError) as e:
        message = str(e)
        assert message and "\n" not in message.strip(), f"{type(e).__name__} not one line: {message[:400]!r}"
        COUNTS[target]["clear error"] += 1
        if os.environ.get("VIVIT_FUZZ_LOG"):
            print(f"[{target}] {type(e).__name__}: {message[:160]}")
        _assert_nothing_outside_opened(outside)
        return
    except Exception as e:
        COUNTS[target]["crash"] += 1
        raise AssertionError(f"{target}: {type(e).__name__}: {str(e)[:400]}") from e
    _assert_nothing_outside_opened(outside)
    for name, p in model.state_dict().items():
        assert not torch.all(p == SENTINEL_VALUE) or p.numel() == 0, f"{name} was loaded from the sentinel"
    COUNTS[target]["loaded"] += 1


def _assert_nothing_outside_opened(outside: Path) -> None:
    touched = [p for p in OPENED if Path(p).resolve().is_relative_to(outside.resolve())]
    assert not touched, f"opened outside the checkpoint: {touched}"


def _mutate(data: bytes, edits, header_len: int) -> bytes:
    out = bytearray(data)
    for position, byte, kind, in_header in edits:
        if not out:
            break
        span = min(len(out), 8 + header_len) if in_header else len(out)
        i = position % span
        if kind == 0:
            out[i] = byte
        elif kind == 1:
            del out[i]
        elif kind == 2:
            out.insert(i, byte)
        else:
            del out[i:]  # truncation
    return bytes(out)


edits = st.lists(
    st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.integers(0, 3), st.booleans()), min_size=1, max_size=3
)
FUZZ = settings(
    max_examples=int(os.environ.get("VIVIT_FUZZ_EXAMPLES", 120)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _rewrite_header(data: bytes, changes) -> bytes:
    """Structured header edits (dtype, shape, offsets, names, metadata), re-serialised with a correct length."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    names = sorted(k for k in header if k != "__metadata__")
    for index, field, value in changes:
        name = names[index % len(names)]
        if field == "rename":
            header[name + str(value)] = header.pop(name)
            names = sorted(k for k in header if k != "__metadata__")
        elif field == "drop":
            header.pop(name, None)
            names = sorted(k for k in header if k != "__metadata__") or names
        elif field == "metadata":
            header["__metadata__"] = value
        elif name in header:
            header[name][field] = value
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data[8 + n :]


header_changes = st.lists(
    st.one_of(
        st.tuples(
            st.integers(0, 99), st.just("dtype"), st.sampled_from(["F32", "I32", "U32", "F16", "F64", "U8", "X"])
        ),
        st.tuples(st.integers(0, 99), st.just("shape"), st.lists(st.integers(-1, 200), max_size=3)),
        st.tuples(st.integers(0, 99), st.just("data_offsets"), st.lists(st.integers(-1, 30000), max_size=3)),
        st.tuples(st.integers(0, 99), st.sampled_from(["rename", "drop"]), st.text(max_size=3)),
        st.tuples(st.integers(0, 99), st.just("metadata"), st.one_of(st.just({"format": "pt"}), st.integers())),
    ),
    min_size=1,
    max_size=3,
)
data_edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8)


def _edit_data(data: bytes, changes) -> bytes:
    """Byte substitutions after the header: values change, the file stays well formed."""
    start = 8 + int.from_bytes(data[:8], "little")
    out = bytearray(data)
    for position, byte in changes:
        if len(out) > start:
            out[start + position % (len(out) - start)] = byte
    return bytes(out)


@FUZZ
@given(
    st.one_of(
        edits.map(lambda e: ("edit", e)),
        header_changes.map(lambda c: ("header", c)),
        data_edits.map(lambda c: ("data", c)),
        st.binary(max_size=64).map(lambda b: ("bytes", b)),
    )
)
def test_fuzz_safetensors_bytes(workspace, case):
    kind, value = case
    with tempfile.TemporaryDirectory(dir=workspace) as tmp:
        directory = Path(tmp) / "ckpt"
        shutil.copytree(workspace / "single", directory)
        path = directory / "model.safetensors"
        data = path.read_bytes()
        header_len = int.from_bytes(data[:8], "little")
        mutated = {
            "edit": lambda: _mutate(data, value, header_len),
            "header": lambda: _rewrite_header(data, value),
            "data": lambda: _edit_data(data, value),
            "bytes": lambda: value,
        }[kind]()
        path.write_bytes(mutated)
        load_and_classify(f"safetensors ({kind})", directory, workspace / "outside")


def _index_entries(workspace: Path):
    shards = sorted(p.name for p in (workspace / "sharded").glob("model-*.safetensors"))
    outside = workspace / "outside"
    hostile = [
        "../outside/sentinel.safetensors",
        "../../outside/sentinel.safetensors",
        str(outside / "sentinel.safetensors"),
        "sub/../../outside/sentinel.safetensors",
        "./" + shards[0],
        "link.safetensors",  # a symlink in the directory to the sentinel
        "C:\\sentinel.safetensors",
        "..",
        "",
        "/",
        "missing.safetensors",
        "../outside/sentinel.bin",
    ]
    return st.one_of(st.sampled_from(shards), st.sampled_from(hostile), st.text(max_size=12), st.integers(), st.none())


@FUZZ
@given(data=st.data())
def test_fuzz_shard_index(workspace, data):
    template = json.loads((workspace / "sharded" / "model.safetensors.index.json").read_text())
    keys = list(template["weight_map"])
    with tempfile.TemporaryDirectory(dir=workspace) as tmp:
        directory = Path(tmp) / "ckpt"
        shutil.copytree(workspace / "sharded", directory)
        os.symlink(workspace / "outside" / "sentinel.safetensors", directory / "link.safetensors")
        shape = data.draw(st.sampled_from(["weight_map", "json", "bytes", "bin"]))
        index_name = "model.safetensors.index.json"
        if shape in ("weight_map", "bin"):
            weight_map = dict(template["weight_map"])
            for key in data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=4)):
                weight_map[key] = data.draw(_index_entries(workspace))
            metadata = data.draw(st.sampled_from([template.get("metadata", {}), {}, None, [], "x", "absent"]))
            index = (
                {"weight_map": weight_map} if metadata == "absent" else {"metadata": metadata, "weight_map": weight_map}
            )
            text = json.dumps(index)
            if shape == "bin":  # the same names through a pytorch_model.bin index
                (directory / index_name).unlink()
                index_name = "pytorch_model.bin.index.json"
        elif shape == "json":
            text = json.dumps(data.draw(st.one_of(st.dictionaries(st.text(max_size=10), st.text(max_size=10)),
                                                  st.lists(st.integers()), st.text())))  # fmt: skip
        else:
            text = data.draw(st.binary(max_size=80)).decode("latin-1")
        (directory / index_name).write_text(text, encoding="latin-1" if shape == "bytes" else "utf-8")
        load_and_classify(f"shard index ({shape})", directory, workspace / "outside")


def test_hostile_entries_are_refused_naming_index_and_entry(workspace, tmp_path):
    """Each hostile name alone: refused before anything opens it, the message naming the index and the entry."""
    template = json.loads((workspace / "sharded" / "model.safetensors.index.json").read_text())
    key = next(iter(template["weight_map"]))
    directory = tmp_path / "ckpt"
    shutil.copytree(workspace / "sharded", directory)
    os.symlink(workspace / "outside" / "sentinel.safetensors", directory / "link.safetensors")
    index = directory / "model.safetensors.index.json"
    for name in ["../outside/sentinel.safetensors", str(workspace / "outside" / "sentinel.safetensors"),
                 "a/../../outside/sentinel.safetensors", "link.safetensors", "C:/x.safetensors"]:  # fmt: skip
        index.write_text(json.dumps({"metadata": {}, "weight_map": {**template["weight_map"], key: name}}))
        OPENED.clear()
        with pytest.raises(CheckpointFileError, match=f"^{index}: weight_map entry {name!r}"):
            VivitForVideoClassification.from_pretrained(directory)
        _assert_nothing_outside_opened(workspace / "outside")
