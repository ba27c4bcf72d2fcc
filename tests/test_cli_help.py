"""Help that teaches: every command and subcommand of `vfmbench` has a description, every option a
help text (defaults stated by the one formatter, never by hand as well), and each command's help
ends with one example that the real parser accepts and whose --set keys the command takes. The
parsers are built in-process and walked; nothing is run."""

from __future__ import annotations

import argparse
import shlex

import pytest

from vfmbench.cli import build_parser
from vfmbench.cli._common import HelpFormatter

PARSER = build_parser()


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path, parser, summary) of `parser` and of every subcommand under it, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(PARSER))
IDS = [" ".join(path) or "vfmbench" for path, _ in COMMANDS]


def _example(parser: argparse.ArgumentParser) -> list[str]:
    """The argv of the example in `parser`'s epilog (without the leading ``vfmbench``)."""
    assert parser.epilog and parser.epilog.startswith("example:\n  vfmbench "), parser.epilog
    lines = parser.epilog.splitlines()[1:]
    assert len(lines) == 1, f"one example, on one line: {parser.epilog!r}"
    return shlex.split(lines[0])[1:]


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction))]


def _states_its_default(action: argparse.Action) -> bool:
    return HelpFormatter(prog="vfmbench")._get_help_string(action) != (action.help or "")


def test_the_walk_reaches_nested_groups():
    names = set(IDS)
    for nested in ("analyze phid", "analyze vat", "rl train", "rl evaluate", "mask eval", "weights path", "runs rm",
                   "import minari", "methods presets", "tasks render", "segmenters list"):
        assert f"{nested}" in names, nested
    assert len(COMMANDS) > 40


@pytest.mark.parametrize("path, parser", COMMANDS, ids=IDS)
def test_every_command_describes_itself_and_its_options(path, parser):
    assert parser.description and len(parser.description) > 20, f"{IDS[COMMANDS.index((path, parser))]}: no description"
    for action in _options(parser):
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"{' '.join(path)} {name}: no help text"
        if _states_its_default(action):  # the formatter appends "(default: X)"; a second one by hand drifts
            assert "default" not in action.help, f"{' '.join(path)} {name}: states its default by hand"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, f"{' '.join(path)} {choice.dest}: no summary in the command list"


@pytest.mark.parametrize("path, parser", COMMANDS, ids=IDS)
def test_every_help_ends_with_an_example_that_parses(path, parser):
    argv = _example(parser)
    assert parser.format_help().rstrip().endswith(parser.epilog.splitlines()[-1].strip())
    assert argv[:len(path)] == list(path), f"the example of {' '.join(path)} runs another command: {argv}"
    args = PARSER.parse_args(argv)  # argparse exits (failing the test) on an option the command lacks
    if "func" in parser._defaults:  # a leaf command: the example runs this one
        assert args.func is parser._defaults["func"]


def test_defaults_are_shown_in_help():
    evaluate = dict(_commands(PARSER))[("evaluate",)].format_help()
    assert "(default: 50)" in evaluate and "(default: none)" in evaluate
    reconstruct = dict(_commands(PARSER))[("analyze", "reconstruct")].format_help()
    assert "(default: 1024,2048,5096)" in reconstruct


# Each command that takes --set, and what checks a mapping of its config keys.
def _check_train(data):
    from vfmbench.training import RunSpec
    from vfmbench.utils.config import from_dict

    from_dict(RunSpec, {"task": "fetch_reach", "encoder": "state", **data}, "train")


def _check_collect(data):
    from vfmbench.data.collection import CollectConfig
    from vfmbench.utils.config import from_dict

    from_dict(CollectConfig, {"task": "fetch_reach", **data}, "collect")


def _check_demo(data):
    from vfmbench.experiments.demo import demo_config_from

    demo_config_from({"include_installed": False, "encoders": ["state"], "encoder_options": {}, **data})


def _check_rl(data):
    from vfmbench.rl import RLRunSpec
    from vfmbench.utils.config import from_dict

    from_dict(RLRunSpec, {"task": "dmc_cartpole_swingup", **data}, "rl train").validate()


def _check_sweep(data):
    from vfmbench.experiments.grid import GRID_PRESETS

    GRID_PRESETS.get("demo_quick").grid([f"{k}={v}" for k, v in _flat(data)])


def _check_mask(data):
    from vfmbench.masking.segmenters import SegmenterConfig
    from vfmbench.utils.config import from_dict

    from_dict(SegmenterConfig, data, "segmenter")


def _flat(data, prefix=""):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


CONFIG_CHECKS = {("train",): _check_train, ("collect",): _check_collect, ("demo",): _check_demo,
                 ("rl", "train"): _check_rl, ("sweep",): _check_sweep, ("mask", "eval"): _check_mask,
                 ("mask", "show"): _check_mask}


def test_every_command_with_set_is_checked_here():
    with_set = {path for path, parser in COMMANDS if any("--set" in a.option_strings for a in parser._actions)}
    assert with_set == set(CONFIG_CHECKS)


@pytest.mark.parametrize("path", list(CONFIG_CHECKS), ids=[" ".join(p) for p in CONFIG_CHECKS])
def test_set_examples_are_keys_the_command_takes(path):
    """Defect: `collect --help` suggested --set train.steps=500, a key collect refuses."""
    from vfmbench.utils.config import apply_overrides

    parser = dict(_commands(PARSER))[path]
    action = next(a for a in parser._actions if "--set" in a.option_strings)
    items = [action.help.split("e.g. --set ")[1].split()[0]]
    argv = _example(parser)
    items += [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    for item in items:
        CONFIG_CHECKS[path](apply_overrides({}, [item]))


def test_defaults_stated_in_words_are_the_configs():
    """Options that take their default from a config say it in words; it must be the config's."""
    import re

    from vfmbench.data.collection import CollectConfig
    from vfmbench.rl import RLRunSpec
    from vfmbench.training import RunSpec

    commands = dict(_commands(PARSER))
    cases = [(("collect",), "--episodes", CollectConfig().episodes), (("collect",), "--seed", CollectConfig().seed),
             (("collect",), "--action-noise", CollectConfig().action_noise),
             (("train",), "--seed", RunSpec(task="fetch_reach", encoder="state").seed),
             (("rl", "train"), "--seed", RLRunSpec(task="dmc_cartpole_swingup").seed)]
    for path, option, value in cases:
        action = next(a for a in commands[path]._actions if option in a.option_strings)
        stated = re.search(r"default: ([0-9.]+), or the config's", action.help)
        assert stated and float(stated.group(1)) == value, (path, option, action.help)
