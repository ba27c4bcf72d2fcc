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


def test_missing_required_keys_and_duplicate_yaml_keys_are_named(tmp_path):
    import dataclasses

    @dataclasses.dataclass
    class Cfg:
        name: str
        size: int
        colour: str = "red"

    with pytest.raises(ConfigError, match=r"^my\.yaml: missing key 'size'$"):
        from_dict(Cfg, {"name": "x"}, source="my.yaml")
    with pytest.raises(ConfigError, match=r"^my\.yaml: missing keys 'name', 'size'$"):
        from_dict(Cfg, None, source="my.yaml")
    dup = tmp_path / "dup.yaml"
    dup.write_text("train:\n  steps: 1\n  steps: 2\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml:3:3: invalid YAML: duplicate key 'steps' \(first on line 2\)$"):
        load_yaml(dup)
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [unclosed\n")
    with pytest.raises(ConfigError) as exc:
        load_yaml(bad)
    assert "\n" not in str(exc.value) and "bad.yaml:3" in str(exc.value) and "<unicode string>" not in str(exc.value)
    (tmp_path / "empty.yaml").write_text("# only a comment\n")
    assert load_yaml(tmp_path / "empty.yaml") == {}
