import json

import pytest

import vfmbench
from vfmbench.cli import app
from vfmbench.utils.errors import UnknownNameError


def test_unknown_task_lists_valid_ones():
    with pytest.raises(UnknownNameError) as exc:
        vfmbench.make_task("fetch_fly")
    assert "fetch_push" in str(exc.value) and "fetch_reach" in str(exc.value)


def test_unknown_encoder_lists_valid_ones():
    with pytest.raises(UnknownNameError) as exc:
        vfmbench.create_encoder("vgg")
    assert "random_resnet18" in str(exc.value)


def test_unknown_method_lists_valid_ones():
    with pytest.raises(UnknownNameError) as exc:
        vfmbench.make_policy("dagger", None, None)
    assert "bc" in str(exc.value)


def test_cli_lists_as_json(capsys):
    assert app(["tasks", "list", "--json"]) == 0
    tasks = {t["name"] for t in json.loads(capsys.readouterr().out)}
    assert {"fetch_reach", "fetch_push", "fetch_pick_and_place"} <= tasks
    assert app(["encoders", "list", "--json"]) == 0
    encoders = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert {"state", "e2e_cnn", "e2e_resnet18", "random_resnet18"} <= set(encoders)
    assert encoders["e2e_cnn"]["trainable"] and not encoders["random_resnet18"]["trainable"]


def test_cli_reports_errors_without_traceback(capsys, tmp_path):
    assert app(["train", "--dataset", str(tmp_path / "nope"), "--encoder", "state", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
