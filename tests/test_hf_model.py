"""Our models as transformers models, on every variant: what transformers' ModelTesterMixin checks for its ViViT
(output flags from the config, ModelOutput behaviour, hidden-state and attention shapes, initialisation, gradient
checkpointing, _no_split_modules, input embeddings, resetting the head) holds for ours wherever it holds for theirs."""

import inspect

import pytest
import torch
import transformers
from _helpers import VARIANTS, randomize
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput

from vivit import VivitConfig, VivitForVideoClassification, VivitModel

# transformers' ViViT tester: batch 2, image 10, frames 8, tubelet [2, 4, 4], hidden 32, 2 layers, 4 heads, inter 37.
TESTER = dict(
    image_size=10,
    num_frames=8,
    tubelet_size=[2, 4, 4],
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    num_labels=3,
    num_temporal_layers=1,
)
B, T, S, H = 2, 4, 4, 4  # batch, temporal indices, spatial positions, heads

pytestmark = pytest.mark.filterwarnings("ignore:.*tubelet_size")


def config(variant, **overrides):
    return VivitConfig(**{**TESTER, "variant": variant, "backend": "eager", **overrides})


def pixels():
    return torch.randn(B, 8, 3, 10, 10)


def expected_shapes(variant):
    """(hidden_states shapes, attentions shapes) as the model docstring (vivit/models/modeling.py) defines them."""
    D, L = 32, 2
    if variant == "spatiotemporal":
        return [(B, 1 + T * S, D)] * (L + 1), [(B, H, 1 + T * S, 1 + T * S)] * L
    if variant == "factorized_encoder":
        spatial = [(B, T, 1 + S, D)] * (L + 1)
        return spatial + [(B, 1 + T, D)] * 2, [(B, T, H, 1 + S, 1 + S)] * L + [(B, H, 1 + T, 1 + T)]
    if variant == "factorized_self_attention":
        return [(B, T * S, D)] * (L + 1), [(B, T, H, S, S), (B, S, H, T, T)] * L
    return [(B, T * S, D)] * (L + 1), [(B, T, H // 2, S, S), (B, S, H // 2, T, T)] * L


@pytest.mark.parametrize("variant", VARIANTS)
def test_config_flags_and_model_output(variant):
    model = randomize(VivitForVideoClassification(config(variant))).eval()
    x = pixels()
    with torch.no_grad():
        plain = model(x)
        assert isinstance(plain, ImageClassifierOutput) and list(plain.keys()) == ["logits"]
        assert plain.hidden_states is None and plain.attentions is None
        model.config._attn_implementation = "eager"  # transformers refuses output_attentions under sdpa
        model.config.output_hidden_states = True
        model.config.output_attentions = True
        out = model(x)
        assert list(out.keys()) == ["logits", "hidden_states", "attentions"] == list(iter(out))
        hidden, attentions = expected_shapes(variant)
        assert [tuple(h.shape) for h in out.hidden_states] == hidden
        assert [tuple(a.shape) for a in out.attentions] == attentions
        assert out[0] is out["logits"] is out.logits and out.to_tuple()[1] is out.hidden_states
        # an explicit argument beats the config
        assert model(x, output_hidden_states=False, output_attentions=False).hidden_states is None
        model.config.return_dict = False
        as_tuple = model(x, labels=torch.tensor([0, 2]))
        assert isinstance(as_tuple, tuple) and len(as_tuple) == 4  # loss, logits, hidden_states, attentions
        torch.testing.assert_close(as_tuple[1], out.logits)
        assert isinstance(model(x, return_dict=True), ImageClassifierOutput)
    base = VivitModel(config(variant)).eval()
    with torch.no_grad():
        out = base(x, output_hidden_states=True)
    assert isinstance(out, BaseModelOutputWithPooling) and out.pooler_output.shape == (B, 32)
    assert len(out.hidden_states) == len(expected_shapes(variant)[0])


@pytest.mark.parametrize("variant", VARIANTS)
def test_attentions_sum_to_one_and_hidden_states_keep_gradients(variant):
    model = randomize(VivitForVideoClassification(config(variant)), std=0.1).train()
    out = model(pixels(), output_hidden_states=True, output_attentions=True)
    for a in out.attentions:
        torch.testing.assert_close(a.sum(-1), torch.ones_like(a.sum(-1)))
    out.hidden_states[0].retain_grad()
    out.hidden_states[-1].retain_grad()
    out.attentions[-1].retain_grad()
    out.logits.sum().backward()
    assert out.hidden_states[0].grad is not None and out.hidden_states[-1].grad is not None
    assert out.attentions[-1].grad is not None


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("use_reentrant", [False, True])
def test_gradient_checkpointing_same_gradients_and_every_parameter_trained(variant, use_reentrant):
    plain = randomize(VivitForVideoClassification(config(variant, hidden_dropout_prob=0.0))).train()
    twin = VivitForVideoClassification(config(variant)).train()
    twin.load_state_dict(plain.state_dict())
    assert VivitForVideoClassification.supports_gradient_checkpointing
    twin.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
    assert twin.is_gradient_checkpointing
    layers = [m for m in twin.modules() if isinstance(m, transformers.modeling_layers.GradientCheckpointingLayer)]
    assert layers and all(m.gradient_checkpointing for m in layers)
    x, labels = pixels(), torch.tensor([1, 2])
    if use_reentrant:  # reentrant checkpointing needs an input that requires grad (transformers' own recipe)
        twin.enable_input_require_grads()
    plain(x, labels=labels).loss.backward()
    twin(x, labels=labels).loss.backward()
    for (name, p), q in zip(plain.named_parameters(), twin.parameters()):
        assert q.grad is not None, name
        torch.testing.assert_close(q.grad, p.grad, atol=1e-6, rtol=1e-5)
    twin.gradient_checkpointing_disable()
    assert not twin.is_gradient_checkpointing


@pytest.mark.parametrize("variant", VARIANTS)
def test_initialisation_covers_every_parameter(variant):
    """As transformers' test_initialization: with initializer_range ~0 every parameter is 0 or 1 exactly (weights,
    biases, LayerNorms, CLS tokens, positions); and no parameter of a loaded model is left uninitialised."""
    model = VivitForVideoClassification(config(variant, initializer_range=1e-10))
    for name, p in model.named_parameters():
        value = ((p.data.mean() * 1e9).round() / 1e9).item()
        assert value in (0.0, 1.0), (name, value)
    ours = VivitForVideoClassification(config(variant))
    rules = {
        "layernorm": lambda n, p: torch.equal(p, torch.ones_like(p) if n.endswith("weight") else torch.zeros_like(p)),
        "bias": lambda n, p: torch.equal(p, torch.zeros_like(p)),
        "token": lambda n, p: torch.equal(p, torch.zeros_like(p)),
        "position": lambda n, p: torch.equal(p, torch.zeros_like(p)),
        "weight": lambda n, p: abs(p.std().item() - 0.02) < 0.01,
    }
    for name, p in ours.named_parameters():
        kind = next(k for k in rules if k in name)
        assert rules[kind](name, p.data), name


def test_every_parameter_initialised_when_nothing_is_loaded(tmp_path):
    """transformers 5.x creates parameters on the meta device and initialises only what the file lacks: a parameter
    set only in __init__ would come back as uninitialised memory."""
    model = VivitForVideoClassification(config("factorized_encoder"))
    model.save_pretrained(tmp_path, state_dict={"classifier.bias": torch.ones(3)})
    loaded = VivitForVideoClassification.from_pretrained(tmp_path)
    for name, p in loaded.named_parameters():
        assert torch.isfinite(p).all() and p.abs().max() <= 1.0 + 1e-6, name
    assert torch.equal(loaded.classifier.bias, torch.ones(3))
    assert torch.equal(loaded.vivit.temporal_embeddings.position_embeddings, torch.zeros(1, 1 + T, 32))


def test_class_attributes_like_transformers():
    hf = transformers.VivitForVideoClassification
    for cls in (VivitModel, VivitForVideoClassification):
        assert issubclass(cls, transformers.PreTrainedModel)
        assert cls.main_input_name == hf.main_input_name == "pixel_values"
        assert cls.base_model_prefix == hf.base_model_prefix == "vivit"
        assert cls.config_class is VivitConfig
        assert list(inspect.signature(cls.forward).parameters)[1] == "pixel_values"
    assert set(hf._no_split_modules) <= set(VivitForVideoClassification._no_split_modules)


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_split_modules_and_input_embeddings(variant):
    model = VivitForVideoClassification(config(variant))
    names = {type(m).__name__ for m in model.modules()}
    listed = set(model._no_split_modules)
    assert {"VivitEmbeddings", "VivitLayer"} <= listed and listed - {"VivitTemporalEmbeddings"} <= names
    assert ("VivitTemporalEmbeddings" in names) == (variant == "factorized_encoder")
    embeddings = model.get_input_embeddings()
    assert embeddings is model.vivit.embeddings.patch_embeddings is model.vivit.get_input_embeddings()
    assert isinstance(embeddings, torch.nn.Module) and isinstance(embeddings.projection, torch.nn.Conv3d)


@pytest.mark.parametrize("variant", VARIANTS)
def test_reset_classifier_and_problem_types(variant):
    model = randomize(VivitForVideoClassification(config(variant))).eval()
    model.reset_classifier(5)
    assert model.classifier.weight.shape == (5, 32) and model.config.num_labels == 5
    assert torch.equal(model.classifier.bias, torch.zeros(5))
    x = pixels()
    for problem, labels in (
        ("single_label_classification", torch.tensor([1, 4])),
        ("multi_label_classification", torch.tensor([[1.0, 0, 0, 1, 0], [0, 1.0, 0, 0, 0]])),
        ("regression", torch.randn(2, 5)),
    ):
        model.config.problem_type = problem
        loss = model(x, labels=labels).loss
        assert loss.dim() == 0 and torch.isfinite(loss)
    model.reset_classifier(0)
    assert isinstance(model.classifier, torch.nn.Identity)
    with pytest.raises(ValueError, match="num_labels must be an integer >= 0, got -1"):
        model.reset_classifier(-1)


def test_determinism_and_eval_mode_after_load(tmp_path):
    model = randomize(VivitForVideoClassification(config("factorized_self_attention", hidden_dropout_prob=0.5)))
    model.save_pretrained(tmp_path)
    loaded = VivitForVideoClassification.from_pretrained(tmp_path)
    assert not loaded.training
    x = pixels()
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, loaded(x).logits)
