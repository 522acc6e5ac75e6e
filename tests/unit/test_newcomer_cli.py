"""The ``yield-ensemble`` command as a newcomer meets it: help, version, plugins, status."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from models import families as fam
from ops import serving_cli
from train import cli


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


def _parser(capsys: pytest.CaptureFixture[str]) -> argparse.ArgumentParser:
    captured: list[argparse.ArgumentParser] = []
    real = argparse.ArgumentParser.parse_args

    def grab(self: argparse.ArgumentParser, *a: Any, **k: Any) -> Any:
        captured.append(self)
        return real(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_args", grab)
        with pytest.raises(SystemExit):
            cli.main(["--help"])
    capsys.readouterr()
    return captured[0]


def test_every_command_has_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    subs = _subparsers(_parser(capsys))
    assert {"train", "report", "log", "log status", "log replay", "status"} <= set(subs)
    missing = [name for name, p in subs.items() if not p.description]
    assert missing == []


def test_log_status_help_is_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["log", "status", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: yield-ensemble log status")
    assert "--show" in out and "replay" not in out.split("options:")[0].split("\n", 2)[2]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("yield-ensemble ") and out.split()[1][0].isdigit()


def test_report_out_says_where(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["report", "--help"])
    assert "current directory" in " ".join(capsys.readouterr().out.split())


def _clean_path(monkeypatch: pytest.MonkeyPatch, here: Path) -> None:
    """sys.path as ``.venv/bin/yield-ensemble`` has it: no working directory on it."""
    repo = str(Path(__file__).resolve().parents[2])
    keep = [p for p in sys.path if p not in ("", ".", repo, str(here))]
    monkeypatch.setattr(sys, "path", keep)
    monkeypatch.chdir(here)
    fam._families.cache_clear()


def test_a_plugin_imports_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_families_x1").mkdir()
    (tmp_path / "my_families_x1" / "__init__.py").write_text("")
    (tmp_path / "my_families_x1" / "logreg.py").write_text(
        textwrap.dedent("""
        from models.families import Family
        FAMILY = Family("logreg_x1", "yield-logreg-x1", ("sklearn",),
                        adapter="a:B", trainer="c:D")
    """)
    )
    _clean_path(monkeypatch, tmp_path)
    monkeypatch.setenv(fam.PLUGINS_ENV, "my_families_x1.logreg:FAMILY")
    try:
        assert fam.member_names()[-1] == "logreg_x1"
    finally:
        fam._families.cache_clear()
        sys.modules.pop("my_families_x1.logreg", None)
        sys.modules.pop("my_families_x1", None)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("no_such_module_x2:FAMILY", "cannot import module 'no_such_module_x2'"),
        ("models.families:NOPE", "module 'models.families' has no 'NOPE'"),
        ("models.families:PLUGINS_ENV", "is a str, not a Family"),
        ("models.families", "is not module:ATTRIBUTE"),
    ],
)
def test_a_bad_plugin_is_one_line_naming_the_variable(
    value: str,
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _clean_path(monkeypatch, tmp_path)
    monkeypatch.setenv(fam.PLUGINS_ENV, value)
    try:
        assert cli.main(["train", "--tiny", "--if-missing"]) == 2
    finally:
        fam._families.cache_clear()
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: {fam.PLUGINS_ENV}: ") and says in err
    assert "Traceback" not in err


def test_status_offers_a_rollback_only_when_one_is_accepted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    state: dict[str, Any] = {
        "champion": "v2", "candidate": None, "share": 0.0, "previous": None, "revision": 3,
        "action": "rollback", "changed_by": "dev", "changed_at": 0.0, "reason": None,
    }  # fmt: skip
    serving_cli._print_state(state)
    out = capsys.readouterr().out
    assert "no rollback" in out and "restores" not in out
    serving_cli._print_state({**state, "previous": "v1", "action": "promote"})
    out = capsys.readouterr().out
    assert "v1" in out and "yield-ensemble rollback" in out


def _row(accuracy: float, overkill: float) -> dict[str, Any]:
    return {"accuracy": {"value": accuracy}, "overkill": {"value": overkill}}


def test_a_rule_far_worse_than_its_best_member_is_named() -> None:
    from train.decide import FAR_WORSE_POINTS, far_worse

    members = {"random_forest": _row(0.93, 0.03), "xgboost": _row(0.94, 0.02)}
    # The case: stacked at a 0.95 fail-recall target, 35% accurate, 79% overkill.
    best, why = far_worse(_row(0.35, 0.79), members)
    assert best == "xgboost"
    assert why == [
        "held-out accuracy 35.0% against 94.0%",
        "held-out overkill 79.0% against 2.0%",
    ]
    # Within the margin, or a cost that moves overkill a little: no warning.
    assert far_worse(_row(0.94 - (FAR_WORSE_POINTS - 1) / 100, 0.05), members)[1] == []
    assert far_worse(_row(0.93, 0.02 + (FAR_WORSE_POINTS + 1) / 100), members)[1] == [
        "held-out overkill 13.0% against 2.0%"
    ]
    # Overkill 10+ points higher but not twice the member's: not "far".
    assert far_worse(_row(0.80, 0.45), {"m": _row(0.85, 0.30)})[1] == []


def _readme_commands() -> list[str]:
    import re

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [line for line in lines if line.lstrip().startswith("yield-ensemble ")]


def test_the_readme_activates_the_venv_before_its_first_command() -> None:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert ".venv/bin/yield-ensemble" not in text
    assert text.index("source .venv/bin/activate") < text.index("yield-ensemble train")


def test_every_readme_command_parses(capsys: pytest.CaptureFixture[str]) -> None:
    import re
    import shlex

    parser = _parser(capsys)
    commands = _readme_commands()
    assert len(commands) >= 10
    for line in commands:
        line = re.sub(r"\s+#.*$", "", line).split("&&")[0]  # a comment, a chained make
        line = re.sub(r"\[--.*?\](?=\s|$)", "", line)  # optional parts, as [--features ...]
        args = shlex.split(line.replace("<admin key>", "k"))[1:]
        try:
            parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"README: {line!r} does not parse: {capsys.readouterr().err}")
