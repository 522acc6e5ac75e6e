"""Spatial features from tester files: ``train --stdf ... --spatial`` builds the rows that
``/predict_stdf`` derives from the same file, ``prior`` reads the file's own PRR pass/fail
and needs a later insertion's label, parts without a place are refused on both sides."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ensemble.errors import InvalidInput
from ensemble.spatial import Spec
from stdf import NO_COORD, concat
from stdf.decode import decode
from stdf.format import STDF
from stdf.testmap import PRIOR_FAIL
from stdf.testmap import TestMap as Map
from tests.stdf_writer import StdfWriter, wafer_file
from tests.unit.test_spatial import _spatial_pipeline
from tests.unit.test_stdf import LOT2
from train import cli, stdf, stdf_cli
from train.data import TrainingDataError

LIMIT = 1 << 24
needs_lot2 = pytest.mark.skipif(not LOT2.is_file(), reason=f"the shared STDF file is not at {LOT2}")


def _files(tmp_path: Path) -> tuple[Path, Path]:
    """A 4-wafer sort file (150 dies each) and a final-test file a later insertion wrote:
    the sort fails fail again, 8% more fail, and every 7th die has no final result."""
    sort = wafer_file(">", parts=150, tests=5, wafers=4, seed=11, lot="L7")
    parts = decode(bytes(sort), max_bytes=LIMIT)
    rng = np.random.default_rng(5)
    later = StdfWriter(">").far().mir("L7")
    for wafer in dict.fromkeys(parts.wafer.tolist()):
        later.wir(wafer)
        for i in np.flatnonzero(parts.wafer == wafer):
            if i % 7 == 3:
                continue
            failed = bool(not parts.passed[i] or rng.random() < 0.08)
            later.pir().prr(str(parts.part_id[i]), int(parts.x[i]), int(parts.y[i]), failed=failed)
        later.wrr()
    (tmp_path / "sort.stdf").write_bytes(bytes(sort))
    (tmp_path / "final.stdf").write_bytes(bytes(later.mrr()))
    return tmp_path / "sort.stdf", tmp_path / "final.stdf"


def _args(**given: Any) -> argparse.Namespace:
    """``train``'s options as the command line leaves them, with ``given`` set."""
    defaults: dict[str, Any] = {
        "stdf": None, "outcomes": None, "label": None, "good_bins": None, "tests": None,
        "only_complete_tests": False, "empty_indicators": False, "spatial": None,
        "spatial_tests": None, "prior_fail": None, "seed": 7,
    }  # fmt: skip
    return argparse.Namespace(**(defaults | given))


def _served(path: Path, data: Any) -> np.ndarray:
    """The rows ``/predict_stdf``'s pipeline hands the members (and logs) for the file, the
    model trained on ``data`` served by fake members."""
    pipeline, ledger, _ = _spatial_pipeline(data.schema, data.metadata)
    answer = asyncio.run(pipeline.run(STDF, "r", path.read_bytes()))
    (served,) = ledger.served
    assert answer["count"] == len(served.dies.rows)
    return np.asarray(served.dies.rows)


def test_training_rows_from_a_file_are_the_rows_served_for_it(tmp_path: Path) -> None:
    sort, final = _files(tmp_path)
    args = _args(stdf=[str(sort)], outcomes=[str(final)], spatial="radial,nnr,zscore,prior")
    data = stdf_cli.dataset(args)
    spec = Spec.from_dict(data.metadata["spatial"])
    test_map = Map.from_dict(data.metadata["stdf_tests"])
    assert spec.features == ("radial", "nnr", "zscore", "prior") and spec.prior == PRIOR_FAIL
    assert test_map.prior_fail and spec.raw == test_map.feature_names
    assert spec.tests == tuple(t.feature for t in test_map.tests)  # not the fail flag
    assert data.whole_wafers and len(np.unique(data.groups)) == 4
    parts = decode(sort.read_bytes(), max_bytes=LIMIT)
    with_label = np.array([i % 7 != 3 for i in range(len(parts))])
    assert len(data.labels) == int(with_label.sum())  # dies without a final result: no rows
    served = _served(sort, data)
    assert served.shape == (600, len(data.schema))
    # The dies without a label are still each other's neighbours, in training as in serving.
    assert np.array_equal(served[with_label], data.features)
    fail = list(data.schema.names).index(PRIOR_FAIL)
    assert np.array_equal(served[:, fail], (~parts.passed).astype(np.float32))
    prior = served[:, list(data.schema.names).index("neighbour_prior_fail")]
    assert 0 < prior.max() <= 1 and prior.min() == 0


def test_prior_with_this_insertions_label_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sort, _ = _files(tmp_path)
    train = ["train", "--tiny", "--stdf", str(sort), "--spatial", "radial,prior"]
    for label in ([], ["--label", "part-flag"], ["--good-bins", "1"]):
        assert cli.main([*train, *label]) == 2
        err = capsys.readouterr().err
        assert "needs --outcomes" in err and "the label itself" in err
    assert cli.main([*train, "--prior-fail", "sort_fail"]) == 2
    assert "--prior-fail names a column of --data" in capsys.readouterr().err


def test_a_part_without_a_place_is_refused_in_training_and_serving(tmp_path: Path) -> None:
    sort, final = _files(tmp_path)
    data = stdf_cli.dataset(_args(stdf=[str(sort)], outcomes=[str(final)], spatial="radial,nnr"))
    parts = decode(sort.read_bytes(), max_bytes=LIMIT)
    x = parts.x.copy()
    x[5] = NO_COORD
    test_map = Map.from_dict(data.metadata["stdf_tests"])
    y = parts.passed.astype(float)
    with pytest.raises(TrainingDataError, match="1 of 600 parts have no die position"):
        stdf.spatial_dataset(replace(parts, x=x), y, np.arange(600), test_map, ["radial"], None,
                             "f")  # fmt: skip
    unplaced = StdfWriter(">").far().mir("L7").wir("W01")
    for i, place in enumerate([(0, 0), (1, 0), (NO_COORD, NO_COORD)]):
        unplaced.pir()
        for j in range(5):
            unplaced.ptr(100 + j, f"VDD_{j}", 0.1 * i)
        unplaced.prr(str(i), *place)
    path = tmp_path / "unplaced.stdf"
    path.write_bytes(bytes(unplaced.wrr().mrr()))
    with pytest.raises(InvalidInput, match="die_x and die_y") as err:
        _served(path, data)
    assert err.value.status == 422 and err.value.field == "die_x, die_y"


def test_an_old_test_map_has_no_fail_flag_and_the_flag_round_trips() -> None:
    parts = decode(bytes(wafer_file(">", parts=30, tests=3, seed=2)), max_bytes=LIMIT)
    plain = Map.choose(parts)
    flagged = replace(plain, prior_fail=True)
    old = plain.to_dict()
    del old["prior_fail"]
    assert Map.from_dict(old) == plain and Map.from_dict(flagged.to_dict()) == flagged
    assert flagged.feature_names == (*plain.feature_names, PRIOR_FAIL)
    rows = flagged.rows(parts)
    assert np.array_equal(rows[:, :-1], plain.rows(parts))
    assert np.array_equal(rows[:, -1], ~parts.passed) and 0 < rows[:, -1].sum() < 30


@needs_lot2
def test_the_real_file_one_wafer_is_refused_with_a_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = ["train", "--tiny", "--stdf", str(LOT2), "--spatial", "radial,nnr,zscore",
           "--only-complete-tests"]  # fmt: skip
    assert cli.main(run) == 2
    assert "1 wafer (GAL-LOT-02); spatial training holds out whole wafers, so it needs at " \
           "least 2" in capsys.readouterr().err  # fmt: skip


@needs_lot2
def test_the_real_file_training_rows_are_the_rows_served_for_it() -> None:
    """lot2 has one wafer, so a second copy of it stands for a second wafer: the features of
    the first copy's 733 datalogged parts (of 1,456: the others ran no PTR) derived in
    training must be those /predict_stdf derives for lot2 itself. The label is PART_FLG
    here: this checks the mapping only; the command refuses prior with it (above)."""
    lot2 = decode(LOT2.read_bytes(), max_bytes=64 << 20)
    twin = replace(lot2, wafer=np.array(["twin"] * len(lot2), dtype=object))
    parts = concat([lot2, twin])
    y = parts.passed.astype(float)
    logged = np.flatnonzero(~np.isnan(parts.values).all(axis=1))
    test_map = replace(Map.choose(stdf.subset(parts, logged)), prior_fail=True)
    data = stdf.spatial_dataset(parts, y, logged, test_map, ("radial", "nnr", "zscore", "prior"),
                                None, "lot2 twice")  # fmt: skip
    served = _served(LOT2, data)
    mine = logged[logged < len(lot2)]
    assert len(mine) == 733 and served.shape == (1456, len(data.schema))
    assert np.array_equal(served[mine], data.features[: len(mine)])
    assert int(served[:, list(data.schema.names).index(PRIOR_FAIL)].sum()) == 67
