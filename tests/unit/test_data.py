from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensemble.schema import DEFAULT_FEATURES
from train.data import TrainingDataError, from_frame, load_table, synthetic
from train.synthetic import generate


def test_synthetic_is_seeded_and_realistic() -> None:
    a, b = generate(3000, seed=3), generate(3000, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not generate(3000, seed=4).equals(a)
    assert list(a.columns[4:10]) == list(DEFAULT_FEATURES)
    assert 1.1 < a.vdd_v.mean() < 1.3
    assert 80 < a.idd_ma.median() < 130
    assert 1900 < a.freq_mhz.mean() < 2100
    assert set(a.temp_c.unique()) <= {-40.0, 25.0, 85.0, 125.0}
    assert 45 < a.test_time_ms.mean() < 60
    assert a.neighbor_yield.between(0, 1).all()
    assert 0.10 <= 1 - a.passed.mean() <= 0.22


def test_neighbor_yield_carries_spatial_signal() -> None:
    data = generate(20_000, seed=1)
    low = data[data.neighbor_yield < 0.5].passed.mean()
    high = data[data.neighbor_yield == 1.0].passed.mean()
    assert high - low > 0.3


def test_dataset_schema_and_hash() -> None:
    ds = synthetic(1000, seed=2)
    assert ds.schema.names == DEFAULT_FEATURES
    assert ds.features.dtype == np.float32 and ds.features.shape == (1000, 6)
    assert ds.schema.minimums[3] == -40.0
    assert ds.sha256 == synthetic(1000, seed=2).sha256
    assert ds.sha256 != synthetic(1000, seed=3).sha256


def _frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "vdd": rng.normal(1.2, 0.03, n),
            "idd": rng.normal(100, 5, n),
            "result": np.where(rng.random(n) < 0.8, "PASS", "fail"),
        }
    )


def test_label_words_and_feature_default(tmp_path: Path) -> None:
    path = tmp_path / "lot.csv"
    _frame().to_csv(path, index=False)
    ds = load_table(path, "result")
    assert ds.schema.names == ("vdd", "idd")
    assert set(np.unique(ds.labels)) == {0, 1}


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "lot.parquet"
    frame = _frame()
    frame["result"] = (frame["result"] == "PASS").astype(int)
    frame.to_parquet(path)
    assert load_table(path, "result").features.shape == (300, 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="result"), "label column 'result' not found"),
        (lambda f: f.assign(lot=["L1"] * len(f)), "feature column 'lot' ("),
        (lambda f: f.head(50), "at least 200 are needed"),
        (lambda f: f.assign(result="pass"), "every row"),
        (lambda f: f.assign(result="maybe"), "must say pass or fail"),
        (lambda f: f.assign(result=2), "must hold 1 (pass) and 0 (fail)"),
        (lambda f: f.assign(vdd=np.nan), "feature column 'vdd' has 300 missing"),
        (lambda f: f.assign(result=["fail"] * 5 + ["pass"] * (len(f) - 5)), "at least 10 of each"),
    ],
)
def test_bad_tables_say_why(change, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TrainingDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_frame(change(_frame()), "result", source="lot.csv")


def test_every_text_column_is_named_at_once() -> None:
    frame = _frame().assign(lot=["L1"] * 300, wafer=["W1"] * 300, ok=True)
    with pytest.raises(TrainingDataError) as error:
        from_frame(frame, "result", source="lot.csv")
    text = str(error.value)
    assert text.startswith("feature columns 'lot' (") and "), 'wafer' (" in text
    assert "'ok' (bool) are not numeric; drop them" in text
    with pytest.raises(TrainingDataError, match="feature columns 'a', 'b' not found"):
        from_frame(_frame(), "result", features=["a", "vdd", "b"], source="lot.csv")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="no such file"):
        load_table(tmp_path / "missing.csv", "result")
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(TrainingDataError, match=r"expected a \.csv or \.parquet"):
        load_table(tmp_path / "x.xlsx", "result")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(TrainingDataError, match="cannot read"):
        load_table(tmp_path / "bad.parquet", "result")


def test_classification_metrics_count_the_fail_class() -> None:
    from train.evaluate import classification_metrics

    labels = np.array([1, 1, 0, 0, 0])  # 1 = pass
    passed = np.array([1, 0, 0, 0, 1])
    m = classification_metrics(labels, np.array([0.9, 0.4, 0.2, 0.1, 0.6]), passed)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["fail_recall"] == pytest.approx(2 / 3)  # 2 of 3 failing dies caught
    assert m["fail_precision"] == pytest.approx(2 / 3)  # 2 of 3 fail calls right
    assert m["brier"] == pytest.approx((0.01 + 0.36 + 0.04 + 0.01 + 0.36) / 5)


def test_a_shifted_lot_moves_the_process_and_keeps_unshifted_data_as_it_was() -> None:
    from train.synthetic import SHIFTED, ProcessShift

    # 20,000 dies (26 wafers): a shifted lot draws other random numbers, so only
    # whole-lot rates are comparable.
    plain, again = generate(20_000, seed=5), generate(20_000, seed=5)
    shifted = generate(20_000, seed=5, shift=SHIFTED)
    assert plain.equals(again)  # seeded, and the shift draws nothing when absent
    assert shifted.temp_c.mean() > plain.temp_c.mean() + 5  # hotter insertions
    assert shifted.vdd_v.mean() < plain.vdd_v.mean() - 0.005  # a low-supply corner
    assert (1 - shifted.passed.mean()) > (1 - plain.passed.mean()) + 0.05
    scratched = generate(20_000, seed=5, shift=ProcessShift(0.0, 0.0, (0.25,) * 4, 1.0))
    assert (1 - scratched.passed.mean()) > (1 - plain.passed.mean()) + 0.02  # scratches only
