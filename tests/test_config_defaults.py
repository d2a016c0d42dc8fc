"""The model's settings have one meaning wherever they are written: ``configs/base.yaml`` equals the config
dataclasses' defaults, the decoder's constructor defaults equal ``ModelConfig``'s, and a model's ``init_args``
(what checkpoints store) name exactly its constructor's arguments."""

from __future__ import annotations

import dataclasses
import inspect

import yaml
from helpers import REPO

from ddsp_demucs.core.config import Config
from ddsp_demucs.model import ResidualDDSPDecoder


def test_base_yaml_is_the_dataclass_defaults():
    base = yaml.safe_load((REPO / "configs" / "base.yaml").read_text())
    defaults = Config()
    for section, values in base.items():
        dataclass = getattr(defaults, section)
        assert set(values) == {f.name for f in dataclasses.fields(dataclass)}, section
        for key, value in values.items():
            default = getattr(dataclass, key)
            assert (list(default) if isinstance(default, tuple) else default) == value, f"{section}.{key}"


def test_decoder_defaults_are_the_model_config_defaults():
    parameters = inspect.signature(ResidualDDSPDecoder.__init__).parameters
    model = Config().model
    for field in dataclasses.fields(model):
        assert parameters[field.name].default == getattr(model, field.name), field.name
    # the two the decoder takes from the data section
    assert set(parameters) - {f.name for f in dataclasses.fields(model)} == {"self", "sample_rate", "frame_rate"}


def test_init_args_are_the_constructor_arguments():
    decoder = ResidualDDSPDecoder(16000, 200, 8, 9, "mask", hidden_size=16, gru_units=16, n_mels=16)
    parameters = inspect.signature(ResidualDDSPDecoder.__init__).parameters
    assert set(decoder.init_args) == set(parameters) - {"self"}
    assert decoder.init_args["sample_rate"] == 16000 and decoder.init_args["hidden_size"] == 16
    rebuilt = ResidualDDSPDecoder(**decoder.init_args)
    assert rebuilt.init_args == decoder.init_args
