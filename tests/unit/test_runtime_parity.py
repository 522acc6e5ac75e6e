"""Every runtime a member may choose answers like the others, on the default model families.

Each family is fitted with the shipped model sizes (the net for 3 epochs, not 30) on
3,000 synthetic dies, saved and exported as training does, then every runtime its
adapter declares is loaded from those files and asked about 2,000 other dies.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from models.families import Family, families
from models.runtimes import CHOICE_KEY, CHOICE_PARITY
from train.data import synthetic
from train.fit import TrainConfig
from train.runtimes import measure


@pytest.mark.parametrize("family", families(), ids=lambda f: f.name)
def test_every_runtime_gives_the_same_answers(family: Family, tmp_path: Path) -> None:
    data = synthetic(3_000, seed=11)
    x = np.ascontiguousarray(data.features, dtype=np.float32)
    trainer = family.load_trainer()(replace(TrainConfig(), keras_epochs=3))
    trainer.fit(x, data.labels)
    trainer.save(tmp_path)
    made = trainer.export(x[:100])
    for export in made if isinstance(made, list) else [made]:
        (tmp_path / export.file).write_bytes(export.blob)
    metadata = trainer.metadata()
    rows = np.ascontiguousarray(synthetic(2_000, seed=12).features, dtype=np.float32)
    adapter = family.load_adapter()
    answers = {r: np.asarray(load(tmp_path, metadata).predict_proba(rows), dtype=np.float64)
               for r, load in adapter.LOADERS.items()}  # fmt: skip
    assert list(answers) == list(family.runtimes)  # the adapter serves what the family declares
    for (a, pa), (b, pb) in itertools.combinations(answers.items(), 2):
        assert pa.shape == pb.shape == (2_000,)
        assert np.max(np.abs(pa - pb)) <= CHOICE_PARITY, (a, b)
    # Training's measurement chooses among them all (none refused for parity).
    choice = measure(adapter, tmp_path, metadata, rows, answers[family.runtimes[-1]], print)
    assert choice is not None and not choice.rejected
    assert set(choice.parity or {}) == set(family.runtimes)
    # Served from those files: with the table, as chosen; without (a store trained before
    # tables), with the family's default runtime, answering the same.
    for meta, expected in (({**metadata, CHOICE_KEY: choice.to_metadata()}, choice.describe()),
                           (metadata, family.default_runtime)):  # fmt: skip
        model = SimpleNamespace(path=str(tmp_path), tag="t:1", info=SimpleNamespace(metadata=meta))
        served = adapter(model)
        assert served.runtime == expected
        p = np.asarray(served.predict_proba(rows), dtype=np.float64)
        assert np.max(np.abs(p - answers[family.runtimes[-1]])) <= CHOICE_PARITY
