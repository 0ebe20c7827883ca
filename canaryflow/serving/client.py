"""``canaryflow.Client``: resolve configs in-process from a local cache of compiled serving state.

The cache holds one :class:`~canaryflow.domain.resolution.CompiledConfig` per key. At most every
``refresh_interval`` seconds (0.5 by default) a resolve call asks the registry for its revisions (one cheap
query) and recompiles only the keys whose revision moved (all keys when a segment changed) — so a registry
change is served within a second, and the hot path never touches the database. If the registry is down, the
last compiled state keeps serving (``status()`` says how stale it is).

Thread-safe: readers never lock; one thread at a time refreshes or loads, swapping whole entries.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.resolution import CompiledConfig, Resolution
from canaryflow.errors import CanaryflowError, NotFound
from canaryflow.registry import SEGMENTS_REVISION_KEY, Registry

if TYPE_CHECKING:
    from canaryflow.serving.sdk import AsyncStream, Context, Messages, SdkTraffic, SyncStream, Variables
    from canaryflow.serving.traffic import Completion

log = logging.getLogger(__name__)


class Client:
    """Resolve AI configs for a user context (the SDK).

    Args:
        registry: a :class:`Registry`, a database URL, or ``None`` for ``CANARYFLOW_DB_URL``.
        refresh_interval: seconds between two revision checks (a change is served within about this).

    Example::

        client = canaryflow.Client()
        res = client.resolve("support-bot", {"key": "user-1", "attributes": {"beta": True}},
                             variables={"product": "Acme"})
        res.version, res.variation, res.messages
    """

    def __init__(self, registry: Registry | str | None = None, *, refresh_interval: float = 0.5):
        self.registry = registry if isinstance(registry, Registry) else Registry(registry)
        self.refresh_interval = refresh_interval
        self._compiled: dict[str, CompiledConfig] = {}
        self._specs: dict[tuple[str, int], ConfigSpec] = {}
        self._segments_revision: int | None = None
        self._known: frozenset[str] | None = None  # keys that existed at the last revision check
        self._next_check = 0.0
        self._lock = threading.Lock()
        self.last_checked: float | None = None  # time.time() of the last successful revision check
        self.last_error: str | None = None
        self._listeners: list[Callable[[CompiledConfig], None]] = []

    # --- the hot path -------------------------------------------------------------------------------
    def resolve(self, key: str, context: Mapping[str, Any] | None = None,
                variables: Mapping[str, object] | None = None) -> Resolution:
        """Which version of ``key`` serves this context, with its messages rendered from ``variables``.

        Raises:
            NotFound: an unknown config key.
            RenderError: a placeholder that ``variables`` does not fill.
            RegistryUnavailable: the key was never loaded and the registry cannot be reached.
        """
        if time.monotonic() >= self._next_check:
            self.refresh()
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._load(key)
        return compiled.resolve(context, variables)

    async def aresolve(self, key: str, context: Mapping[str, Any] | None = None,
                       variables: Mapping[str, object] | None = None) -> Resolution:
        """:meth:`resolve` for async code: inline when cached and fresh, else in a worker thread."""
        compiled = self._compiled.get(key)
        if compiled is not None and time.monotonic() < self._next_check:
            return compiled.resolve(context, variables)
        return await asyncio.to_thread(self.resolve, key, context, variables)

    # --- cache maintenance --------------------------------------------------------------------------
    def compiled(self, key: str) -> CompiledConfig:
        """The cached compiled config of ``key`` (loaded on first use)."""
        if time.monotonic() >= self._next_check:
            self.refresh()
        return self._compiled.get(key) or self._load(key)

    def spec(self, key: str, version: int) -> ConfigSpec:
        """The spec of any version of ``key`` (versions are immutable, so cached forever)."""
        compiled = self._compiled.get(key)
        if compiled is not None and compiled.has_version(version):
            return compiled.spec(version)
        found = self._specs.get((key, version))
        if found is None:
            found = self.registry.get_version(key, version).spec
            self._specs[(key, version)] = found
        return found

    def refresh(self, *, force: bool = False) -> bool:
        """Check the registry's revisions now and recompile what changed. False if skipped or failed.

        Called by :meth:`resolve` at most every ``refresh_interval`` seconds; another thread's refresh in
        progress makes this one return at once (callers keep the state they have).
        """
        if not self._lock.acquire(blocking=force):
            return False
        try:
            now = time.monotonic()
            if not force and now < self._next_check:
                return False
            self._next_check = now + self.refresh_interval
            try:
                revisions = self.registry.revisions()
            except CanaryflowError as exc:
                self._failed(exc)
                return False
            self._known = frozenset(k for k in revisions if k != SEGMENTS_REVISION_KEY)
            segments_changed = revisions.get(SEGMENTS_REVISION_KEY) != self._segments_revision
            ok = True
            for key, compiled in list(self._compiled.items()):
                if segments_changed or revisions.get(key) != compiled.revision:
                    try:
                        self._compiled[key] = self._compile(key)
                    except CanaryflowError as exc:
                        self._failed(exc)
                        ok = False
            if ok:
                self._segments_revision = revisions.get(SEGMENTS_REVISION_KEY)
                self.last_checked = time.time()
                self.last_error = None
            return ok
        finally:
            self._lock.release()

    def on_compile(self, listener: Callable[[CompiledConfig], None]) -> None:
        """Call ``listener`` with every config compiled from now on, and now with those already cached (the
        traffic plane creates the config's metric series at 0 there, before any request is served)."""
        self._listeners.append(listener)
        for compiled in list(self._compiled.values()):
            self._notify(listener, compiled)

    def warm(self) -> list[str]:
        """Load every config of the registry into the cache now (a gateway calls it before serving, so each
        served version's series exist before the first request). Returns the keys loaded.

        Raises:
            RegistryUnavailable: the registry cannot be reached.
        """
        self.refresh(force=True)
        loaded = []
        for key in sorted(self._known or ()):
            try:
                self._load(key)
            except NotFound:  # a config pushed but never given a serving state yet
                continue
            loaded.append(key)
        return loaded

    def status(self) -> dict[str, Any]:
        """Cache health for ``/healthz``: keys cached, their revisions, seconds since the last good check."""
        age = None if self.last_checked is None else max(0.0, time.time() - self.last_checked)
        return {"cached": {k: c.revision for k, c in self._compiled.items()}, "seconds_since_check": age,
                "last_error": self.last_error, "refresh_interval": self.refresh_interval}

    def close(self) -> None:
        """Release the registry's connections."""
        traffic = self.__dict__.pop("_traffic", None)
        if traffic is not None:
            traffic.close()
        self.registry.close()

    # --- serving: provider calls, metrics, traffic log, shadow, feedback (canaryflow.serving.sdk) ------
    def traffic(self, **options: Any) -> SdkTraffic:
        """The client's traffic plane, created on first use; ``options`` (first call only) go to
        :class:`~canaryflow.serving.sdk.SdkTraffic` (traffic_rate, redactor, metrics, timeout, ...)."""
        traffic: SdkTraffic | None = self.__dict__.get("_traffic")
        if traffic is None:
            from canaryflow.serving.sdk import SdkTraffic

            traffic = self.__dict__.setdefault("_traffic", SdkTraffic(self, **options))
        return traffic

    def complete(self, key: str, messages: Messages = (), context: Context = None,
                 variables: Variables = None, *, parameters: Mapping[str, Any] | None = None,
                 body: Mapping[str, Any] | None = None, api: str = "chat") -> Completion:
        """Resolve ``key``, call its provider (fallbacks included) with the config's messages then
        ``messages``, count it in the metrics; the answer comes with its request id, version and variation.

        ``body`` is a whole request of the API ``api`` (``chat``: OpenAI Chat Completions, ``messages``:
        Anthropic) — tools, response formats, multimodal content and any other field travel to the provider
        with the config applied; ``Completion.response`` is the provider's whole answer in that API (its
        ``tool_calls`` are also in ``Completion.tool_calls``).

        Raises:
            NotFound, RenderError: as :meth:`resolve`.
            ProviderError: the provider failed after every fallback.
        """
        return self.traffic().complete(key, messages, context, variables, parameters=parameters, body=body,
                                       api=api)

    async def acomplete(self, key: str, messages: Messages = (),
                        context: Context = None, variables: Variables = None,
                        *, parameters: Mapping[str, Any] | None = None,
                        body: Mapping[str, Any] | None = None, api: str = "chat") -> Completion:
        """:meth:`complete` for async code."""
        return await self.traffic().acomplete(key, messages, context, variables, parameters=parameters,
                                              body=body, api=api)

    def stream(self, key: str, messages: Messages = (), context: Context = None,
               variables: Variables = None, *, parameters: Mapping[str, Any] | None = None,
               body: Mapping[str, Any] | None = None, api: str = "chat") -> SyncStream:
        """:meth:`complete`, streamed: ``for text in client.stream(...)``; ``.completion`` at the end;
        ``stream.events()`` instead gives the provider's stream events whole (tool-call deltas included)."""
        return self.traffic().stream(key, messages, context, variables, parameters=parameters, body=body,
                                     api=api)

    async def astream(self, key: str, messages: Messages = (),
                      context: Context = None, variables: Variables = None,
                      *, parameters: Mapping[str, Any] | None = None,
                      body: Mapping[str, Any] | None = None, api: str = "chat") -> AsyncStream:
        """:meth:`stream` for async code: ``async for text in await client.astream(...)``."""
        return await self.traffic().astream(key, messages, context, variables, parameters=parameters,
                                            body=body, api=api)

    def feedback(self, request_id: str, sentiment: str, comment: str | None = None) -> None:
        """Record ``positive`` or ``negative`` feedback on a request this client served."""
        self.traffic().feedback(request_id, sentiment, comment)

    def track(self, request_id: str, event: str, value: float | None = None) -> None:
        """Record an implicit feedback event on a request this client served: ``edited`` (value = edit
        distance), ``copied``, ``shared``, ``regenerated``, ``task_completed``, ``abandoned`` or
        ``dwell_seconds`` (value = seconds); once per request and event (a later one replaces it)."""
        self.traffic().track(request_id, event, value)

    def _compile(self, key: str) -> CompiledConfig:
        state, versions, segments = self.registry.snapshot(key)
        compiled = CompiledConfig(state, versions, segments)
        for listener in self._listeners:
            self._notify(listener, compiled)
        return compiled

    @staticmethod
    def _notify(listener: Callable[[CompiledConfig], None], compiled: CompiledConfig) -> None:
        try:
            listener(compiled)
        except Exception:  # a listener's failure never stops serving
            log.exception("canaryflow: compile listener failed for %r", compiled.key)

    def _load(self, key: str) -> CompiledConfig:
        known = self._known
        if known is not None and key not in known:  # no database round trip per request for a typo
            listing = ", ".join(sorted(known)[:20]) or "the registry is empty"
            raise NotFound(f"unknown config {key!r} (known: {listing}); push it with "
                           "'canaryflow config push FILE'")
        with self._lock:
            compiled = self._compiled.get(key)
            if compiled is None:
                compiled = self._compile(key)
                self._compiled[key] = compiled
            return compiled

    def _failed(self, exc: CanaryflowError) -> None:
        if self.last_error != str(exc):
            log.warning("canaryflow: serving cached configs, registry refresh failed: %s", exc)
        self.last_error = str(exc)


class AsyncClient:
    """The async face of :class:`Client` (same cache; database work runs in worker threads)."""

    def __init__(self, registry: Registry | str | None = None, *, refresh_interval: float = 0.5,
                 client: Client | None = None):
        self.sync = client or Client(registry, refresh_interval=refresh_interval)

    async def resolve(self, key: str, context: Mapping[str, Any] | None = None,
                      variables: Mapping[str, object] | None = None) -> Resolution:
        """See :meth:`Client.resolve`."""
        return await self.sync.aresolve(key, context, variables)

    async def refresh(self) -> bool:
        """See :meth:`Client.refresh`."""
        return await asyncio.to_thread(self.sync.refresh, force=True)

    async def close(self) -> None:
        """Release the registry's connections."""
        await asyncio.to_thread(self.sync.close)


__all__ = ["AsyncClient", "Client"]
