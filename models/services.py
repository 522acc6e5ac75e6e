"""The member services, one process per model family, reached by the entry with ``depends``.

One service class is made per family of ``models.families``; the entry depends on
each of them (``MEMBER_SERVICES``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import bentoml
import numpy as np

from ensemble.settings import get_settings
from models import bentoml_quirks
from models.base import MemberAdapter, model_schema, model_tag, stored_model
from models.families import Family, families, family
from models.runtimes import RuntimeAdapter
from ops import logs
from ops.gc_tuning import return_freed_memory, tune_gc
from ops.settings import get_ops_settings

logger = logging.getLogger(__name__)
SETTINGS = get_settings()
OPS = get_ops_settings()
#: Not a run but "the newest run now": refused where a version must be concrete.
LATEST = "latest"
#: A version served in the last this many seconds stays loaded (``_Member.prepare``).
KEEP_USED_S = 60.0

_SERVICE_OPTIONS: dict[str, Any] = {
    "workers": 1,
    "threads": 1,
    "traffic": {"timeout": 60},
    "runner_connection": bentoml_quirks.RUNNER_CONNECTION,
    # An access line per internal call is three lines per request; the entry logs each request.
    "logging": {"access": {"enabled": False}},
}
# The calls the entry makes per request: no span for them unless tracing is asked for.
_SERVICE_OPTIONS.update(
    bentoml_quirks.tracing_options(OPS.tracing, ["/predict_proba", "/predict_version"])
)


def _load_adapter(member: str, model: bentoml.Model) -> MemberAdapter:
    """The member's adapter: the runtime ``YIELD_ENSEMBLE_RUNTIMES`` names, else the model's
    measured choice per batch size (``models.runtimes``), else the family's default."""
    cls = family(member).load_adapter()
    runtime: str | None = SETTINGS.runtimes.get(member)
    if runtime is None and not (isinstance(cls, type) and issubclass(cls, RuntimeAdapter)):
        runtime = SETTINGS.runtime(member)  # a plugin adapter that knows no choice table
    adapter: MemberAdapter = cls(model, runtime)
    return adapter


class _Member:
    """Shared body of the member services: load one adapter, answer P(pass) in batches.

    The entry calls ``predict_version`` with the concrete run it serves (the ledger's
    serving state), never ``predict_proba``: the start-up model is the settings' version
    (``latest``: the newest run when this process started), which a member restarted
    after a new run was trained resolves differently from the rest of the replica.
    ``predict_proba`` answers from the start-up model, for direct use only. The serving
    versions are loaded by ``prepare`` (the entry repeats it every few seconds).
    """

    member: str

    def __init__(self) -> None:
        logs.configure(OPS.log_format, OPS.log_level)
        start = time.perf_counter()
        model = stored_model(self.member)
        self.tag = str(model.tag)
        self.startup = str(model.tag.version)
        self.schema = model_schema(model)
        self.adapter = _load_adapter(self.member, model)
        #: version -> (tag, adapter), the start-up version's always among them.
        self.loaded: dict[str, tuple[str, MemberAdapter]] = {self.startup: (self.tag, self.adapter)}
        self.used: dict[str, float] = {}  # version -> when predict_version last used it
        self._loading = asyncio.Lock()
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
        await self._chaos()
        return self.adapter.predict_proba(np.asarray(rows, dtype=np.float32))

    @bentoml.api
    async def predict_version(self, rows: np.ndarray, version: str) -> np.ndarray:
        """P(pass) for ``rows`` from the model of ``version`` (loaded first if it is not)."""
        await self._chaos()
        _, adapter = await self._load(version)
        self.used[version] = time.monotonic()
        return adapter.predict_proba(np.asarray(rows, dtype=np.float32))

    @bentoml.api
    async def prepare(self, versions: list[str]) -> dict[str, str]:
        """Load ``versions``: version -> tag. Unload the others, but the start-up one and
        any asked for in the last ``KEEP_USED_S`` (an entry worker that has not yet
        followed the change still serves it).

        Raises (the entry's call fails, naming the tag) if a version is not in the store.
        """
        tags = {v: (await self._load(v))[0] for v in versions}
        now = time.monotonic()
        stale = [
            version
            for version in set(self.loaded) - set(versions) - {self.startup}
            if now - self.used.get(version, -math.inf) > KEEP_USED_S
        ]
        for version in stale:
            tag, _ = self.loaded.pop(version)
            self.used.pop(version, None)
            logger.info("member %s unloaded %s", self.member, tag)
        if stale:
            return_freed_memory()
        return tags

    async def _load(self, version: str) -> tuple[str, MemberAdapter]:
        if version == LATEST:
            # Each process's own ``latest`` may name another run: only concrete ones here.
            raise ValueError(f"member {self.member} serves concrete versions, not {LATEST!r}")
        if version in self.loaded:
            return self.loaded[version]
        async with self._loading:
            if version not in self.loaded:
                started = time.perf_counter()
                model = stored_model(self.member, version)
                adapter = await asyncio.to_thread(_load_adapter, self.member, model)
                self.loaded[version] = (str(model.tag), adapter)
                logger.info("member %s loaded %s (%s) in %.2f s", self.member, model.tag,
                            adapter.runtime, time.perf_counter() - started)  # fmt: skip
            return self.loaded[version]

    async def _chaos(self) -> None:
        if self.chaos is not None:
            if self.chaos.delay_ms:
                await asyncio.sleep(self.chaos.delay_ms / 1000)
            if self.chaos.fail:
                raise RuntimeError(f"chaos: member {self.member} set to fail")

    @bentoml.api
    def info(self) -> dict[str, Any]:
        """Which model this member serves, with which runtime and schema, and what it holds."""
        return {
            "member": self.member,
            "tag": self.tag,
            "runtime": self.adapter.runtime,
            # The choice table and its timings (ms per call at each size), when measured.
            "runtime_choice": (
                self.adapter.info() if isinstance(self.adapter, RuntimeAdapter) else None
            ),
            "features": list(self.schema.names),
            "loaded": sorted(tag for tag, _ in self.loaded.values()),
        }


bentoml_quirks.fix_media_type(_Member.predict_proba)
bentoml_quirks.fix_media_type(_Member.predict_version)


def _member_service(f: Family) -> Any:
    """The BentoML service hosting family ``f``: ``yield_<name>``, class ``<Name>Member``."""
    class_name = "".join(part.title() for part in f.name.split("_")) + "Member"
    namespace = {
        "__module__": __name__,
        "__doc__": f"Hosts the {f.name} model ({f.store_name}).",
        "member": f.name,
        "model": bentoml.models.BentoModel(model_tag(f.name)),
    }
    if SETTINGS.candidate_version is not None:
        # Packed by `bentoml build` too, so the image can serve its candidate.
        namespace["candidate_model"] = bentoml.models.BentoModel(
            model_tag(f.name, SETTINGS.candidate_version)
        )
    return bentoml.service(name=f"yield_{f.name}", **_SERVICE_OPTIONS)(
        type(class_name, (_Member,), namespace)
    )


#: member name -> its service, in vote order.
MEMBER_SERVICES: dict[str, Any] = {f.name: _member_service(f) for f in families()}
