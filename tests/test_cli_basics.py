"""Command-line basics: `--set` / `--shift-set` values are parsed in one place (`apply_overrides`),
so a malformed value is one error line naming the key, never a YAML traceback; `--version`."""

import pytest

from vfmbench.cli import app
from vfmbench.utils.config import apply_overrides
from vfmbench.utils.errors import ConfigError


@pytest.mark.parametrize("item, message", [
    ("axes.seeds=[0,", r"--set axes.seeds: '\[0,' is not a valid YAML value"),
    ("train.steps={", r"--set train.steps: '\{' is not a valid YAML value"),
    ("a..b=1", r"'a\.\.b' is not a key"),
    ("=3", r"'' is not a key"),
    ("steps", r"expected KEY=VALUE"),
])
def test_malformed_overrides_name_the_key(item, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides({}, [item])


@pytest.mark.parametrize("argv", [
    ["demo", "--set", "seeds=[0,", "--out", "{out}"],
    ["sweep", "--preset", "demo_quick", "--set", "axes.seeds=[0,", "--out", "{out}"],
    ["shifts", "list", "--json"],  # a command without --set still works
])
def test_commands_report_a_malformed_value_in_one_line(argv, tmp_path, capsys):
    argv = [a.replace("{out}", str(tmp_path / "out")) for a in argv]
    rc = app(argv)
    err = capsys.readouterr().err
    if "--set" in argv:
        assert rc == 2 and err.count("\n") == 1 and "is not a valid YAML value" in err, err
        assert not (tmp_path / "out").exists()  # nothing started
    else:
        assert rc == 0


def test_version_prints_the_installed_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        app(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"vfmbench {version('vfmbench')}"
