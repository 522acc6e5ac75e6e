"""The A/B report's drift section: is the window's input like the training data?

The drift reads' own code (``ledger.drift``: bins counted in the database, one pass over
the window's rows grouped by lot, ``ledger.drift_stats``' PSI and wafer-corrected,
Holm-adjusted test), against the serving champion's reference, over the report's window:
the window as a whole (its lots summed, rows without a lot included), and each lot in it,
judged as ``GET /dashboard/drift/lots`` judges it. Every logged prediction of the window
counts, whatever arm served it (the inputs do not depend on the arm), so ``arm=`` does not
narrow this section.

A lot is ``drifted`` when some feature's Holm-adjusted p-value is under alpha (0.01), and
``alert`` (the ``YieldEnsembleLotDrift`` alert's documented threshold) when such a feature
also has a PSI over 0.25. Lots are listed alerting first, then drifted, then by their
largest PSI, at most ``ledger.drift.MAX_LIMIT`` (the worst); ``lots_total``,
``lots_drifted`` and ``lots_alert`` count every lot of the window.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ensemble.drift import Reference
from ledger import drift
from ledger.drift_stats import ALPHA, PSI_MODERATE, PSI_SIGNIFICANT

#: Why a report has no drift section's figures: the champion has no reference.
NO_REFERENCE = (
    "the serving champion was saved without reference distributions (trained before "
    "drift references); drift needs a model trained by this release (yield-ensemble train)"
)


def _worst_first(lot: dict[str, Any]) -> tuple[bool, bool, float]:
    return (not lot["alert"], not lot["drifted"], -lot["max_psi"])


def section(
    engine: sa.Engine,
    reference: Reference | None,
    since: float | None,
    until: float | None,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """The report's ``drift``: ``available`` (False, with ``note``, without a reference),
    ``overall`` (the window's drift and its most drifted feature's histogram; None with no
    predictions), ``lots`` (each lot's drift, worst first), ``lots_total``,
    ``lots_drifted``, ``lots_alert``, ``worst_lot`` (the worst drifted lot's most drifted
    feature and its histogram; None when no lot drifted) and the ``thresholds``.

    Histograms are ``ledger.drift.histogram``'s: served counts per reference bin beside
    the training and held-out shares, ``edges`` the reference's.
    """
    window = {"since": since, "until": until}
    if reference is None:
        return {"available": False, "note": NO_REFERENCE, "window": window}
    whole, judged, counts = drift.by_lot(engine, reference, since, until, alpha)
    lots = sorted(judged, key=_worst_first)[: drift.MAX_LIMIT]
    worst = None
    if lots and lots[0]["drifted"]:
        lot_id = lots[0]["lot_id"]
        feature = drift.most_drifted(lots[0])
        j = reference.names.index(str(feature))
        histogram = drift.histogram(reference.features[j], counts[lot_id][j])
        worst = {"lot_id": lot_id, "feature": feature, "histogram": histogram}
    return {
        "available": True,
        "window": window,
        "overall": whole,
        "lots": lots,
        "lots_total": len(judged),
        "lots_drifted": sum(lot["drifted"] for lot in judged),
        "lots_alert": sum(lot["alert"] for lot in judged),
        "worst_lot": worst,
        "thresholds": {
            "alpha": alpha,
            "psi_significant": PSI_SIGNIFICANT,
            "psi_moderate": PSI_MODERATE,
            "drifted": f"some feature's Holm-adjusted p-value under {alpha:g}",
            "alert": f"a drifted feature with PSI over {PSI_SIGNIFICANT:g} "
            "(the YieldEnsembleLotDrift alert)",
        },
    }
