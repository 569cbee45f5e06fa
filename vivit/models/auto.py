"""Registration with transformers' Auto classes and checkpoint conversion, run by `import vivit`.

Model 1 directories have model_type "vivit": transformers' own ViViT classes load them (and ours do). Models 2-4 have
model types of their own, registered here with a config class and two model classes each, so that AutoConfig,
AutoModel, AutoModelForVideoClassification and `pipeline("video-classification")` load them as ours. The image
processor we save ("VivitTorchImageProcessor") is registered with AutoImageProcessor too. A transformers
install without vivit stops at their unknown model_type instead of loading them into the wrong architecture.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

# The class itself, not `transformers.AutoImageProcessor`: some versions (5.17) put a placeholder there that demands
# torchvision, which the registration does not need.
from transformers.models.auto.image_processing_auto import AutoImageProcessor

from vivit.data.processing import VivitTorchImageProcessor
from vivit.models import weight_names
from vivit.models.configuration import (
    VivitFactorizedDotProductConfig,
    VivitFactorizedEncoderConfig,
    VivitFactorizedSelfAttentionConfig,
)
from vivit.models.modeling import VivitForVideoClassification, VivitModel


class VivitFactorizedEncoderModel(VivitModel):
    """VivitModel of Model 2, the class AutoModel gives for model_type "vivit_factorized_encoder"."""

    config_class = VivitFactorizedEncoderConfig


class VivitFactorizedEncoderForVideoClassification(VivitForVideoClassification):
    """VivitForVideoClassification of Model 2 (AutoModelForVideoClassification)."""

    config_class = VivitFactorizedEncoderConfig


class VivitFactorizedSelfAttentionModel(VivitModel):
    """VivitModel of Model 3, the class AutoModel gives for model_type "vivit_factorized_self_attention"."""

    config_class = VivitFactorizedSelfAttentionConfig


class VivitFactorizedSelfAttentionForVideoClassification(VivitForVideoClassification):
    """VivitForVideoClassification of Model 3 (AutoModelForVideoClassification)."""

    config_class = VivitFactorizedSelfAttentionConfig


class VivitFactorizedDotProductModel(VivitModel):
    """VivitModel of Model 4, the class AutoModel gives for model_type "vivit_factorized_dot_product"."""

    config_class = VivitFactorizedDotProductConfig


class VivitFactorizedDotProductForVideoClassification(VivitForVideoClassification):
    """VivitForVideoClassification of Model 4 (AutoModelForVideoClassification)."""

    config_class = VivitFactorizedDotProductConfig


AUTO_CLASSES = (
    (VivitFactorizedEncoderConfig, VivitFactorizedEncoderModel, VivitFactorizedEncoderForVideoClassification),
    (
        VivitFactorizedSelfAttentionConfig,
        VivitFactorizedSelfAttentionModel,
        VivitFactorizedSelfAttentionForVideoClassification,
    ),
    (VivitFactorizedDotProductConfig, VivitFactorizedDotProductModel, VivitFactorizedDotProductForVideoClassification),
)


class _VivitTorchProcessorKey:
    """`AutoImageProcessor.register` files processors under a config class; transformers ignores registrations under
    its own config classes and refuses names it already maps (such as "VivitConfig"), so this stand-in is the key.
    `AutoImageProcessor.from_pretrained` finds registered processors by the `image_processor_type` name."""


def register() -> None:
    """Idempotent: a second call (e.g. after importlib.reload) changes nothing."""
    weight_names.register()
    for config_class, model_class, classifier_class in AUTO_CLASSES:
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, model_class, exist_ok=True)
        AutoModelForVideoClassification.register(config_class, classifier_class, exist_ok=True)
    processors = {"torchvision": VivitTorchImageProcessor, "pil": VivitTorchImageProcessor}
    AutoImageProcessor.register(_VivitTorchProcessorKey, image_processor_classes=processors, exist_ok=True)
