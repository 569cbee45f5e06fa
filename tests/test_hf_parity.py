"""Model 1 against Hugging Face transformers' ViViT, both directions, on small odd configs."""

import pytest
import torch
import transformers
from _helpers import randomize

from vivit import VivitConfig, VivitForVideoClassification, VivitModel

TINY = dict(
    image_size=10,
    num_frames=8,
    tubelet_size=[2, 4, 4],
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    num_labels=3,
)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def hf_model(cls_name: str, attn: str, **overrides):
    config = transformers.VivitConfig(**{**TINY, **overrides})
    model = getattr(transformers, cls_name)(config)
    randomize(model)
    model.config._attn_implementation = attn
    return model.eval()


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    model = hf_model("VivitForVideoClassification", "eager")
    path = tmp_path_factory.mktemp("hf") / "vivit"
    model.save_pretrained(path)
    return path, model


@pytest.fixture
def hf_attn(hf_dir, attn):
    """hf_dir with the HF model on attention implementation `attn` for one test (restored even if the test fails)."""
    path, hf = hf_dir
    hf.config._attn_implementation = attn
    yield path, hf
    hf.config._attn_implementation = "eager"


@pytest.mark.filterwarnings("ignore:.*tubelet_size")
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_classifier_matches_hf(hf_attn, attn):
    path, hf = hf_attn
    ours = VivitForVideoClassification.from_pretrained(path)
    x = torch.randn(2, 8, 3, 10, 10)
    want_attn = attn == "eager"
    with torch.no_grad():
        ref = hf(x, output_hidden_states=True, output_attentions=want_attn)
        out = ours(x, output_hidden_states=True, output_attentions=want_attn)
    assert rel_err(out.logits, ref.logits) < 1e-5
    assert len(out.hidden_states) == len(ref.hidden_states) == TINY["num_hidden_layers"] + 1
    for a, b in zip(out.hidden_states, ref.hidden_states):
        assert rel_err(a, b) < 1e-5
    if want_attn:
        assert len(out.attentions) == len(ref.attentions) == TINY["num_hidden_layers"]
        for a, b in zip(out.attentions, ref.attentions):
            assert a.shape == b.shape == (2, 4, 17, 17)
            assert rel_err(a, b) < 1e-5


@pytest.mark.filterwarnings("ignore:.*tubelet_size")
def test_loss_matches_hf(hf_dir):
    path, hf = hf_dir
    ours = VivitForVideoClassification.from_pretrained(path)
    x = torch.randn(3, 8, 3, 10, 10)
    labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        assert rel_err(ours(x, labels=labels).loss, hf(x, labels=labels).loss) < 1e-5
        multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
        hf.config.problem_type = "multi_label_classification"
        ours.config.problem_type = "multi_label_classification"
        assert rel_err(ours(x, labels=multi).loss, hf(x, labels=multi).loss) < 1e-5
    hf.config.problem_type = None


@pytest.mark.filterwarnings("ignore:.*tubelet_size")
@pytest.mark.parametrize("hidden_act", ["gelu_fast", "gelu_new", "gelu"])
def test_base_model_with_pooler_matches_hf(tmp_path, hidden_act):
    hf = hf_model("VivitModel", "sdpa", image_size=[12, 9], num_frames=5, tubelet_size=[2, 3, 3], hidden_act=hidden_act)
    hf.save_pretrained(tmp_path)
    ours = VivitModel.from_pretrained(tmp_path)
    x = torch.randn(2, 5, 3, 12, 9)
    with torch.no_grad():
        ref, out = hf(x), ours(x)
    assert out.last_hidden_state.shape == ref.last_hidden_state.shape == (2, 1 + 2 * 4 * 3, 32)
    assert rel_err(out.last_hidden_state, ref.last_hidden_state) < 1e-5
    assert rel_err(out.pooler_output, ref.pooler_output) < 1e-5


@pytest.mark.filterwarnings("ignore:.*tubelet_size")
def test_our_save_loads_in_hf(tmp_path):
    config = VivitConfig(**TINY, qkv_bias=False)
    ours = VivitForVideoClassification(config).eval()
    randomize(ours)
    ours.save_pretrained(tmp_path)
    hf, info = transformers.VivitForVideoClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert all(not v for v in info.values()), info
    x = torch.randn(2, 8, 3, 10, 10)
    with torch.no_grad():
        assert rel_err(ours(x).logits, hf.eval()(x).logits) < 1e-5


@pytest.mark.filterwarnings("ignore:.*tubelet_size")
def test_load_state_dict_accepts_hf5_in_memory_names():
    hf = hf_model("VivitForVideoClassification", "eager")
    sd = hf.state_dict()
    assert "vivit.layers.0.attention.q_proj.weight" in sd  # transformers 5.x names in memory
    ours = VivitForVideoClassification(VivitConfig(**TINY)).eval()
    ours.load_state_dict(sd)  # strict
    x = torch.randn(1, 8, 3, 10, 10)
    with torch.no_grad():
        assert rel_err(ours(x).logits, hf(x).logits) < 1e-5


@pytest.mark.filterwarnings("ignore:.*tubelet_size")
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_per_token_attention_mask_matches_hf5(hf_attn):
    path, hf = hf_attn
    ours = VivitForVideoClassification.from_pretrained(path)
    x = torch.randn(2, 8, 3, 10, 10)
    mask = torch.ones(2, 17, dtype=torch.long)
    mask[1, 5:] = 0
    mask[0, 3] = 0
    with torch.no_grad():
        ref = hf(x, attention_mask=mask, output_hidden_states=True)
        out = ours(x, attention_mask=mask, output_hidden_states=True)
    assert rel_err(out.logits, ref.logits) < 1e-5
    for a, b in zip(out.hidden_states, ref.hidden_states):
        assert rel_err(a, b) < 1e-5
