from __future__ import annotations

from pathlib import Path

import pytest

from ensemble.settings import Settings, SettingsError, get_settings


def test_defaults() -> None:
    s = Settings()
    assert s.member_timeout_s > 0 and s.model_version == "latest" and s.chaos == {}


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("YIELD_ENSEMBLE_MEMBER_TIMEOUT_S", "-1", "YIELD_ENSEMBLE_MEMBER_TIMEOUT_S"),
        ("YIELD_ENSEMBLE_MAX_BATCH_DEVICES", "many", "YIELD_ENSEMBLE_MAX_BATCH_DEVICES"),
        ("YIELD_ENSEMBLE_CHAOS", '{"lstm": {"fail": true}}', "YIELD_ENSEMBLE_CHAOS"),
        # Families, combiners and arms are checked against their registries.
        ("YIELD_ENSEMBLE_RUNTIMES", '{"keras": "onnx"}', "not one of"),
        ("YIELD_ENSEMBLE_RUNTIMES", '{"svm": "onnx"}', "no family 'svm'"),
        ("YIELD_ENSEMBLE_CHALLENGER", "svm", "no family 'svm'"),
        ("YIELD_ENSEMBLE_COMBINER", "bagged", "no combiner 'bagged'"),
        ("YIELD_ENSEMBLE_ARMS", '[{"name": "b", "serves": "svm", "share": 0.1}]', "no member"),
        ("YIELD_ENSEMBLE_ARMS", '[{"name": "b", "serves": "keras", "share": 1.5}]', "share"),
        (
            "YIELD_ENSEMBLE_ARMS",
            '[{"name": "ensemble", "serves": "keras", "share": 0.1}]',
            "do not",
        ),
        ("YIELD_ENSEMBLE_ARMS", '[{"name": "b"}]', "needs name, serves, share"),
    ],
)
def test_bad_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match=words):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_chaos_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YIELD_ENSEMBLE_CHAOS", '{"keras": {"delay_ms": 300, "fail": true}}')
    s = Settings()
    assert s.chaos["keras"].delay_ms == 300 and s.chaos["keras"].fail


def test_every_setting_is_documented_in_docs_settings() -> None:
    from pathlib import Path

    from ensemble.settings import Settings
    from ledger.settings import LedgerSettings
    from ops.settings import OpsSettings

    readme = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    fields = [*Settings.model_fields, *LedgerSettings.model_fields, *OpsSettings.model_fields]
    assert len(fields) == len(set(fields)), "a variable belongs to one area"
    missing = [f for f in fields if f"`YIELD_ENSEMBLE_{f.upper()}`" not in readme]
    assert not missing, missing


def test_the_default_data_dir_is_absolute_and_independent_of_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("YIELD_ENSEMBLE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    from ledger.settings import LedgerSettings

    here = LedgerSettings().data_dir
    monkeypatch.chdir("/")
    assert here.is_absolute() and LedgerSettings().data_dir == here
    assert here == tmp_path / "yield-ensemble"
    assert LedgerSettings().log_url == f"sqlite:///{here / 'predictions.db'}"


@pytest.mark.parametrize("share", ["0.9", "0.95", "0"])
def test_a_candidate_share_must_leave_the_champion_devices(
    monkeypatch: pytest.MonkeyPatch, share: str
) -> None:
    """With the challenger at 10%, the ensemble arm has 90%: all of it is refused too."""
    monkeypatch.setenv("YIELD_ENSEMBLE_CANDIDATE_VERSION", "v2")
    monkeypatch.setenv("YIELD_ENSEMBLE_CANDIDATE_SHARE", share)
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match=r"YIELD_ENSEMBLE_CANDIDATE_SHARE.*promote it"):
            get_settings()
        monkeypatch.setenv("YIELD_ENSEMBLE_CANDIDATE_SHARE", "0.3")
        get_settings.cache_clear()
        assert get_settings().candidate_share == 0.3
    finally:
        get_settings.cache_clear()
