"""`yield-ensemble train --stdf` and `stdf inspect` on the real wafer-sort file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ensemble.decision import STORE_NAME
from models.families import families
from stdf.decode import decode
from stdf.testmap import TestMap as Map

from .conftest import LOT2, ROOT, base_env, needs_lot2

pytestmark = pytest.mark.integration


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "train.cli", *args],
        cwd=ROOT,
        env=base_env(home),
        capture_output=True,
        text=True,
    )


def _stored(home: Path) -> dict[str, dict[str, object]]:
    names = {f.name: f.store_name for f in families()} | {"decision": STORE_NAME}
    code = (
        "import bentoml, json\n"
        f"names = {names!r}\n"
        "print(json.dumps({m: bentoml.models.get(n + ':latest').info.metadata "
        "for m, n in names.items()}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=base_env(home), capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    return json.loads(run.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@needs_lot2
def test_training_from_the_wafer_sort_file_saves_its_test_map(
    stdf_trained: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    home, run = stdf_trained  # `train --tiny --folds 2 --stdf lot2.stdf.gz`
    assert run.returncode == 0, run.stderr
    assert "723 parts have no PTR result" in run.stdout
    assert "WARNING: the label leaks" in run.stderr and "--only-complete-tests" in run.stderr
    assert "only tests every part ran" in run.stdout  # the honest option's figure is printed
    stored = _stored(home)
    maps = {m: meta["stdf_tests"] for m, meta in stored.items()}
    assert len({json.dumps(v, sort_keys=True) for v in maps.values()}) == 1  # one map, everywhere
    test_map = Map.from_dict(maps["decision"])  # type: ignore[arg-type]
    assert len(test_map.tests) == 74
    assert stored["xgboost"]["features"]["names"] == list(test_map.feature_names)  # type: ignore[index]
    rows = test_map.rows(decode(LOT2.read_bytes(), max_bytes=64 << 20))
    assert rows.shape == (1456, 74)


@needs_lot2
def test_the_honest_setting_uses_only_tests_every_part_ran(tmp_path: Path) -> None:
    run = _cli(
        tmp_path, "train", "--tiny", "--folds", "2", "--stdf", str(LOT2), "--only-complete-tests"
    )
    assert run.returncode == 0, run.stderr
    assert "label leaks" not in run.stderr
    test_map = Map.from_dict(_stored(tmp_path)["keras"]["stdf_tests"])  # type: ignore[arg-type]
    assert [t.number for t in test_map.tests] == [1000]


def test_a_bad_file_exits_2_naming_record_and_offset(tmp_path: Path) -> None:
    bad = tmp_path / "cut.stdf"
    from tests.stdf_writer import wafer_file

    w = wafer_file(">", parts=300)
    bad.write_bytes(bytes(w)[: w.offset_of("PTR", 40) + 9])
    for args in (["train", "--tiny", "--stdf", str(bad)], ["stdf", "inspect", str(bad)]):
        run = _cli(tmp_path, *args)
        assert run.returncode == 2, run.stderr
        assert "truncated record" in run.stderr
        assert f"PTR record at byte {w.offset_of('PTR', 40)}" in run.stderr


@needs_lot2
def test_inspect_prints_what_a_yield_engineer_checks_first(tmp_path: Path) -> None:
    run = _cli(tmp_path, "stdf", "inspect", str(LOT2))
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "tester A530" in out and "big-endian" in out and "lot GAL-LOT" in out
    assert "GAL-LOT-02 (1456 parts)" in out and "113 retests" in out
    assert "1389 pass, 67 fail" in out and "hard bins: 1: 1389" in out
    assert "74 PTR tests" in out and "glxy_OSC" in out


def test_spatial_training_from_files_saves_its_spec_beside_the_test_map(tmp_path: Path) -> None:
    """``--spatial`` with ``--stdf``: the sort file's parts, the final test's label, the
    features derived per wafer; every member and the decision carry both maps."""
    from tests.unit.test_stdf_spatial import _files

    sort, final = _files(tmp_path)
    run = _cli(tmp_path, "train", "--tiny", "--folds", "2", "--stdf", str(sort), "--outcomes",
               str(final), "--spatial", "radial,nnr,prior")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "(1 whole wafers)" in run.stdout  # 4 wafers, one held out
    stored = _stored(tmp_path)
    assert len({json.dumps(m["spatial"], sort_keys=True) for m in stored.values()}) == 1
    spec = stored["decision"]["spatial"]
    test_map = Map.from_dict(stored["decision"]["stdf_tests"])  # type: ignore[arg-type]
    assert spec["features"] == ["radial", "nnr", "prior"] and spec["prior"] == "sort_fail"  # type: ignore[index]
    assert spec["raw"] == list(test_map.feature_names) and test_map.prior_fail  # type: ignore[index]
    tests = [t.feature for t in test_map.tests]
    assert stored["keras"]["features"]["names"] == [  # type: ignore[index]
        *test_map.feature_names, "radius_norm", "edge_ring", *(f"nnr_{t}" for t in tests),
        "neighbour_prior_fail",
    ]  # fmt: skip
