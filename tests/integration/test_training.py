"""What `yield-ensemble train` stores, and how it refuses bad data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensemble.combiners import COMBINERS
from ensemble.schema import DEFAULT_FEATURES
from models.families import Family, families, family, member_names

from .conftest import ROOT, base_env, trained_decision

pytestmark = pytest.mark.integration


def _metadata(home: Path) -> dict[str, dict[str, object]]:
    code = (
        "import bentoml, json\n"
        f"names = { {f.name: f.store_name for f in families()}!r}\n"
        "out = {m: dict(bentoml.models.get(n + ':latest').info.metadata, "
        "tag=str(bentoml.models.get(n + ':latest').tag)) for m, n in names.items()}\n"
        "print(json.dumps(out))\n"
    )
    return json.loads(_python(code, home))  # type: ignore[no-any-return]


def _python(code: str, home: Path) -> str:
    """The last line ``code`` prints, run in a fresh interpreter with ``home`` as the store."""
    return (
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=base_env(home),
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )


def test_members_saved_with_metadata(model_home: Path) -> None:
    meta = _metadata(model_home)
    assert set(meta) == set(member_names())
    versions = {str(m["tag"]).split(":")[1] for m in meta.values()}
    assert len(versions) == 1  # one training run, one shared version
    for member, m in meta.items():
        assert m["member"] == member
        assert m["features"]["names"] == list(DEFAULT_FEATURES)  # type: ignore[index]
        assert len(str(m["data_sha256"])) == 64
        metrics = m["metrics"]
        assert 0.5 < metrics["accuracy"] <= 1 and 0 <= metrics["brier"] < 0.25  # type: ignore[index]
        assert {"scikit-learn", "xgboost", "keras", "bentoml"} <= set(m["versions"])  # type: ignore[arg-type]
        assert m["train_config"]["seed"] == 7  # type: ignore[index]
        exports = family(member).runtimes[:-1]  # all but the native library
        assert list(m["runtimes"]) == list(exports)  # type: ignore[call-overload]
        for runtime in m["runtimes"].values():  # type: ignore[attr-defined]
            assert runtime["saved"] is True
            assert runtime["parity"]["rows"] == 600  # the held-out 20% of 3,000 dies
            assert runtime["parity"]["max_abs_diff"] < 1e-5
            assert runtime["parity"]["decisions_changed"] == 0
        choice = m["runtime_choice"]
        assert set(choice["timings_ms"]) == set(family(member).runtimes)  # type: ignore[index]
        assert choice["rungs"][0]["min_rows"] == 1  # type: ignore[index]
        assert max(choice["parity_max_abs_diff"].values()) <= 1e-6  # type: ignore[index]


@pytest.mark.parametrize("family", families(), ids=lambda f: f.name)
def test_fast_runtime_answers_like_the_native_model(model_home: Path, family: Family) -> None:
    """The measured choice and the native runtime load from the store in a fresh process;
    only the native Keras one imports TF."""
    member, native = family.name, family.runtimes[-1]
    code = (
        "import json, sys, numpy as np\n"
        "from train.synthetic import feature_rows\n"
        "from models.base import stored_model\n"
        "from models.services import _load_adapter\n"
        "import models.services as s\n"
        "rows = np.asarray(feature_rows(2000, seed=99), dtype=np.float32)\n"
        f"fast = _load_adapter('{member}', stored_model('{member}'))\n"
        "p_fast = fast.predict_proba(rows)\n"
        "tf_after_fast = 'tensorflow' in sys.modules\n"
        f"s.SETTINGS.runtimes['{member}'] = '{native}'\n"
        f"slow = _load_adapter('{member}', stored_model('{member}'))\n"
        "p_slow = slow.predict_proba(rows)\n"
        "print(json.dumps({'runtimes': [fast.runtime, slow.runtime], 'tf': tf_after_fast,\n"
        "  'diff': float(np.abs(p_fast - p_slow).max()), 'n': len(p_fast),\n"
        "  'flips': int(((p_fast >= 0.5) != (p_slow >= 0.5)).sum())}))\n"
    )
    result = json.loads(_python(code, model_home))
    chosen, pinned = result["runtimes"]
    assert pinned == native
    assert "tensorflow" not in chosen  # LiteRT is faster at every size ...
    assert result["tf"] is False  # ... and the chosen runtimes never import TensorFlow
    assert result["n"] == 2000 and result["diff"] < 1e-5 and result["flips"] == 0


def test_training_on_a_user_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 400
    table = pd.DataFrame({"vdd": rng.normal(1.2, 0.03, n), "leak_na": rng.lognormal(0, 1, n)})
    table["bin"] = np.where(table.leak_na > 2.5, "FAIL", "PASS")
    table.to_csv(tmp_path / "lot.csv", index=False)
    home = tmp_path / "home"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "train.cli",
            "train",
            "--tiny",
            "--data",
            str(tmp_path / "lot.csv"),
            "--label",
            "bin",
            "--combiner",
            "auto",
            "--escape-cost",
            "10",
            "--folds",
            "3",
        ],
        cwd=ROOT,
        env=base_env(home),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "out of fold (3 folds" in run.stdout and "held out" in run.stdout
    assert "costs escape 10, overkill 1" in run.stdout
    meta = _metadata(home)
    assert meta["keras"]["features"]["names"] == ["vdd", "leak_na"]  # type: ignore[index]
    decision = trained_decision(home)
    assert decision.members == {m: meta[m]["tag"] for m in member_names()}
    assert decision.objective.escape_cost == 10 and decision.chosen in COMBINERS
    assert f"{decision.chosen} *" in run.stdout  # the served row is marked
    assert decision.combiner().key == meta["keras"]["combiner"]
    for name, combiner in decision.combiners.items():
        assert combiner.key == f"{name}:1@{decision.run}" and 0 < combiner.threshold < 1
    assert set(decision.tables["held_out"]) == {*member_names(), *COMBINERS}


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--escape-cost", "0"], "--escape-cost: must be a positive number"),
        (["--overkill-cost", "inf"], "--overkill-cost: must be a positive number"),
        (["--target-fail-recall", "1.5"], "--target-fail-recall: must be in (0, 1]"),
        (["--combiner", "bagged"], "invalid choice: 'bagged'"),
        (["--folds", "1"], "--folds: must be 2 to 20"),
    ],
)
def test_bad_decision_flags_exit_2_naming_the_flag(
    tmp_path: Path, flags: list[str], words: str
) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "train.cli", "train", "--tiny", *flags],
        cwd=ROOT,
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and words in run.stderr, run.stderr


def test_bad_table_exits_with_message(tmp_path: Path) -> None:
    pd.DataFrame({"vdd": [1.2] * 300, "lot": ["L1"] * 300, "bin": [1, 0] * 150}).to_csv(
        tmp_path / "lot.csv", index=False
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "train.cli",
            "train",
            "--data",
            str(tmp_path / "lot.csv"),
            "--label",
            "bin",
        ],
        cwd=ROOT,
        env=base_env(tmp_path / "home"),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "feature column 'lot' (str) is not numeric" in run.stderr
