"""End to end on the real simulator: a tiny demo grid and state BC reaching the goal."""

import json
import re

import pytest

from vfmbench.cli import app
from vfmbench.experiments import read_results

pytestmark = pytest.mark.sim


def test_tiny_demo_writes_results_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--no-progress",
            "--set", "episodes=20", "--set", "seeds=[0]", "--set", "eval_episodes=10",
            "--set", "encoders=[state,e2e_cnn]", "--set", "encoder_options={}", "--set", "include_installed=false",
            "--set", "train.steps=800", "--set", "trainable_steps=20",
            "--set", "shifts=[distractor]"]
    assert app(args) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema"] == "vfmbench.results/2"
    results = read_results(out / "results.json")  # the typed records round-trip
    recs = {r.encoder: r for r in results.records}
    assert set(recs) == {"state", "e2e_cnn"}
    for r in recs.values():
        assert r.schema == "vfmbench.run/1" and r.task == "fetch_reach" and r.method == "bc" and r.seed == 0
        assert 0.0 <= r.success_rate <= 1.0 and r.evaluation.episodes == 10
    assert recs["state"].train.augment == "cached" and recs["e2e_cnn"].train.steps == 20
    # state BC on 20 reach demonstrations reaches the goal
    assert recs["state"].success_rate >= 0.9
    report = (out / "report.md").read_text()
    assert re.search(r"\| fetch_reach\s+\| state\s+\| bc\s+\|", report) and (out / "success.png").exists()
    printed = capsys.readouterr().out
    assert "success (mean ± std)" in printed
    # robustness under the distractor shift: paired drop against the clean task
    rob = {(r.encoder, s.shift): s for r in results.records for s in r.robustness}
    assert set(rob) == {("state", "none"), ("state", "distractor"), ("e2e_cnn", "none"), ("e2e_cnn", "distractor")}
    assert rob[("state", "none")].success_rate == recs["state"].success_rate
    assert rob[("state", "none")].drop == 0.0
    assert "## Under shifts" in report and "distractor" in printed
    # rerunning resumes: nothing is retrained, the same records come back
    assert app(args) == 0
    again = read_results(out / "results.json")
    assert [r.success_rate for r in again.records] == [r.success_rate for r in results.records]
    assert [r.train for r in again.records] == [r.train for r in results.records]


def test_train_and_evaluate_commands(reach_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert app(["train", "--dataset", str(reach_dataset.root), "--encoder", "state", "--out", str(run),
                "--no-progress", "--set", "train.steps=300", "--set", "train.eval_episodes=5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["encoder"] == "state" and result["success_rate"] is not None
    gif = tmp_path / "roll.gif"
    assert app(["evaluate", "--run", str(run), "--episodes", "4", "--video", str(gif), "--json", "--no-progress"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["episodes"] == 4 and gif.exists() and gif.stat().st_size > 1000


def test_default_encoder_options_go_with_their_encoder_a_users_do_not():
    from vfmbench.experiments.demo import demo_config_from
    from vfmbench.utils.errors import ConfigError

    assert demo_config_from({"encoders": ["state"], "include_installed": False}).encoder_options == {}
    assert demo_config_from({}).encoder_options == {"imagenet_efficientnet_lite0": {"input_size": 84}}
    with pytest.raises(ConfigError, match="encoder_options names 'random_resnet18'"):
        demo_config_from({"encoders": ["state"], "encoder_options": {"random_resnet18": {"pooling": "avg"}}})


def test_demo_options_follow_the_installed_encoders_and_bad_ones_stop_before_any_work(tmp_path, capsys):
    """`encoders=[state]` with the installed EfficientNet keeps its 84x84 option; an option an
    encoder does not take is refused before the output folder exists."""
    from vfmbench.encoders import installed_encoders
    from vfmbench.experiments.demo import demo_config_from

    cfg = demo_config_from({"encoders": ["state"]})
    expected = {"imagenet_efficientnet_lite0": {"input_size": 84}} if "imagenet_efficientnet_lite0" in \
        installed_encoders() else {}
    assert cfg.encoder_options == expected
    out = tmp_path / "demo"
    assert app(["demo", "--quick", "--out", str(out), "--set", "encoder_options.random_resnet18.pooling=max"]) == 2
    assert "encoder 'random_resnet18': bad encoder_options: no option 'pooling'; its options:" in capsys.readouterr().err
    assert not out.exists()


def test_quick_demo_runs_are_kept_apart_in_the_index():
    from vfmbench.experiments.demo import demo_config_from, quick_config

    assert demo_config_from({}).name == "demo"
    assert quick_config(demo_config_from({})).name == "demo_quick"
    assert quick_config(demo_config_from({"name": "mine"})).name == "mine"
