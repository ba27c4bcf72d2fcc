import pytest

from vfmbench.experiments.demo import demo_config_from
from vfmbench.utils.config import apply_overrides, from_dict, load_yaml
from vfmbench.utils.errors import ConfigError
from vfmbench.training import TrainConfig


def test_unknown_key_names_the_key_and_valid_keys():
    with pytest.raises(ConfigError) as exc:
        demo_config_from({"train": {"stepz": 10}}, source="demo.yaml")
    msg = str(exc.value)
    assert "'stepz'" in msg and "demo.yaml" in msg and "steps" in msg


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match=r"train\.steps: expected an integer"):
        demo_config_from({"train": {"steps": "many"}})


def test_literal_choices_are_listed():
    with pytest.raises(ConfigError, match="'shift'"):
        from_dict(TrainConfig, {"augment": "rotate"})


def test_overrides_parse_yaml_scalars_and_lists():
    data = apply_overrides({}, ["train.steps=500", "seeds=[1,2]", "task=fetch_push"])
    cfg = demo_config_from(data)
    assert cfg.train.steps == 500 and cfg.seeds == [1, 2] and cfg.task == "fetch_push"


def test_unknown_encoder_in_demo_config_lists_valid_ones():
    with pytest.raises(KeyError) as exc:
        demo_config_from({"encoders": ["state", "resnet9000"]})
    assert "resnet9000" in str(exc.value) and "e2e_cnn" in str(exc.value)


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_yaml(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")


def test_exponent_strings_are_numbers_and_demo_checks_the_method():
    from vfmbench.utils.errors import UnknownNameError

    cfg = demo_config_from(apply_overrides({}, ["method_config.lr=1e-3"]))
    assert cfg.method_config["lr"] == "1e-3"  # kept raw here; the method's typed config converts it
    from vfmbench.policies import method_config

    assert method_config("bc", cfg.method_config).lr == 1e-3
    with pytest.raises(UnknownNameError, match="bc"):
        demo_config_from({"method": "bcc"})
