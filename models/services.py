"""The member services, one process per model family, reached by the entry with ``depends``.

One service class is made per family of ``models.families``; the entry depends on
each of them (``MEMBER_SERVICES``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import bentoml
import numpy as np

from ensemble.settings import get_settings
from models import bentoml_quirks
from models.base import MemberAdapter, model_schema, model_tag, stored_model
from models.families import Family, families, family
from ops.gc_tuning import tune_gc

logger = logging.getLogger(__name__)
SETTINGS = get_settings()

_SERVICE_OPTIONS: dict[str, Any] = {
    "workers": 1,
    "threads": 1,
    "traffic": {"timeout": 60},
    "runner_connection": bentoml_quirks.RUNNER_CONNECTION,
    # An access line per internal call is three lines per request; the entry logs each request.
    "logging": {"access": {"enabled": False}},
}
_SERVICE_OPTIONS.update(bentoml_quirks.tracing_options(SETTINGS.tracing, ["/predict_proba"]))


def _load_adapter(member: str, model: bentoml.Model) -> MemberAdapter:
    adapter: MemberAdapter = family(member).load_adapter()(model, SETTINGS.runtime(member))
    return adapter


class _Member:
    """Shared body of the member services: load one adapter, answer P(pass) in batches."""

    member: str

    def __init__(self) -> None:
        start = time.perf_counter()
        model = stored_model(self.member)
        self.tag = str(model.tag)
        self.schema = model_schema(model)
        self.adapter = _load_adapter(self.member, model)
        self.chaos = SETTINGS.chaos.get(self.member)
        bentoml_quirks.outlive_the_entry(self.member, SETTINGS.member_shutdown_grace_s)
        tune_gc()
        logger.info(
            "member %s loaded %s (%s) in %.2f s",
            self.member,
            self.tag,
            self.adapter.runtime,
            time.perf_counter() - start,
        )

    @bentoml.api(
        batchable=True,
        max_batch_size=SETTINGS.member_max_batch_size,
        max_latency_ms=SETTINGS.member_max_latency_ms,
    )
    async def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """P(pass) for each row of ``rows`` (n, k) float32.

        ``async`` so it runs on the event loop: the exported models answer a row in
        ~15 us, less than the hand-off to a worker thread costs (py-spy: 47% of the
        Keras member's CPU went to that hand-off).
        """
        if self.chaos is not None:
            if self.chaos.delay_ms:
                await asyncio.sleep(self.chaos.delay_ms / 1000)
            if self.chaos.fail:
                raise RuntimeError(f"chaos: member {self.member} set to fail")
        return self.adapter.predict_proba(np.asarray(rows, dtype=np.float32))

    @bentoml.api
    def info(self) -> dict[str, Any]:
        """Which model this member serves, with which runtime and schema."""
        return {
            "member": self.member,
            "tag": self.tag,
            "runtime": self.adapter.runtime,
            "features": list(self.schema.names),
        }


bentoml_quirks.fix_media_type(_Member.predict_proba)


def _member_service(f: Family) -> Any:
    """The BentoML service hosting family ``f``: ``yield_<name>``, class ``<Name>Member``."""
    class_name = "".join(part.title() for part in f.name.split("_")) + "Member"
    namespace = {
        "__module__": __name__,
        "__doc__": f"Hosts the {f.name} model ({f.store_name}).",
        "member": f.name,
        "model": bentoml.models.BentoModel(model_tag(f.name)),
    }
    return bentoml.service(name=f"yield_{f.name}", **_SERVICE_OPTIONS)(
        type(class_name, (_Member,), namespace)
    )


#: member name -> its service, in vote order.
MEMBER_SERVICES: dict[str, Any] = {f.name: _member_service(f) for f in families()}
