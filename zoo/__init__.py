"""spikebench's model zoo: spiking vision transformers on one shared spiking core.

>>> import zoo
>>> model = zoo.create_model("msvit_4_384.cifar100", T=4)
"""

from zoo.official import load_official_state_dict
from zoo.registry import (ModelCard, create_model, list_models, model_arguments, model_card, model_parameters,
                          register_model)

__all__ = ["create_model", "list_models", "model_card", "model_arguments", "model_parameters", "register_model",
           "ModelCard", "load_official_state_dict"]
