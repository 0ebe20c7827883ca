"""An OpenFeature provider over :class:`canaryflow.Client` (needs ``pip install 'canaryflow[openfeature]'``).

Flag keys: a config key resolves the whole config as an **object** flag; ``<config>.<field>[.<field>...]``
resolves one field of it with the typed evaluations (``support-bot.model`` as a string,
``support-bot.version`` as an integer, ``support-bot.parameters.temperature`` as a float,
``support-bot.candidate`` as a boolean). The object value::

    {"config": "support-bot", "version": 3, "variation": "candidate", "segment": "beta", "candidate": true,
     "provider": "openai", "model": "gpt-4o-mini", "messages": [{"role": "system", "content": "..."}],
     "parameters": {"temperature": 0.2}, "tools": [{"name": ..., "description": ..., "parameters": ...}],
     "fallback": [...], "request_id": "...", "reason": "segment 'beta' is exposed to candidate v3"}

(plus ``tool_choice`` and ``response_format`` when the config sets them).

Evaluation context: ``targeting_key`` → the user key; attributes → the targeting attributes, except the
reserved attribute ``canaryflow.variables`` (a mapping), which fills the prompt's ``{{placeholders}}``
(variables are not targeting attributes, so they are passed explicitly and never matched by segments).
Variables given to the provider's constructor are defaults under it.

Reasons: ``TARGETING_MATCH`` (a pin or an exposed segment decided), ``SPLIT`` (a percent stage's bucket
decided, whichever side the user fell on, or an exposed segment's holdback did), ``STATIC`` (no rollout,
or only a shadow one: stable for everyone; or a rollout at full), ``DEFAULT`` (a rollout or pin exists but
did not target this context: stable), ``ERROR``.
Error codes: ``FLAG_NOT_FOUND`` (unknown config or field), ``TYPE_MISMATCH`` (the field has another type:
booleans are never numbers, an integer serves a float evaluation, a float never an integer one),
``PARSE_ERROR`` (a prompt variable is missing), ``INVALID_CONTEXT`` (``canaryflow.variables`` is not a
mapping), ``GENERAL`` (the registry cannot be reached).
``variant`` is the variation; flag metadata carries ``config``, ``version``, ``variation``, ``segment``,
``provider``, ``model`` and ``request_id``.

Events: a background watcher polls the registry's revisions (``poll_interval`` seconds) and emits
``PROVIDER_CONFIGURATION_CHANGED`` with the changed config keys (every cached key when segments changed).

Tracking (``client.track(name, context, TrackingEventDetails(...))``), keyed by the ``request_id`` of an
evaluation's metadata:

* ``completion`` — the app called the provider itself: attributes ``outcome`` (``success`` | ``error``),
  ``error_type``, ``finish_reason``, ``input_tokens``, ``output_tokens``, ``cost_usd``; ``value`` = seconds
  it took. Counted in ``canaryflow_requests_total`` and the duration/token series under the evaluation's
  config, version and variation, so the rollout's gates see it.
* ``feedback`` — attributes ``sentiment`` (``positive`` | ``negative``) and ``comment``; ``value`` may give
  the sentiment instead (> 0 positive, < 0 negative). Stored and counted once per request like
  :meth:`canaryflow.Client.feedback`.

* an implicit feedback event — ``edited`` (``value`` = edit distance), ``copied``, ``shared``,
  ``regenerated``, ``task_completed``, ``abandoned``, ``dwell_seconds`` (``value`` = seconds): stored and
  counted once per request and event like :meth:`canaryflow.Client.track`.

Any other event name is refused with a :class:`~canaryflow.errors.ValidationFailed` (canaryflow has no
generic custom events yet).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

try:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.event import ProviderEventDetails
    from openfeature.exception import ErrorCode, GeneralError
    from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
    from openfeature.provider import AbstractProvider, Metadata
    from openfeature.track import TrackingEventDetails
except ImportError as exc:  # an optional extra
    raise ImportError("canaryflow.openfeature needs the OpenFeature SDK: "
                      "pip install 'canaryflow[openfeature]'") from exc

from canaryflow.domain.implicit import EVENTS as IMPLICIT_EVENTS
from canaryflow.domain.implicit import VALUED as VALUED_EVENTS
from canaryflow.domain.resolution import CompiledConfig, Resolution
from canaryflow.errors import CanaryflowError, NotFound, RenderError, ValidationFailed
from canaryflow.metrics.instruments import Labels, Metrics, record_request
from canaryflow.registry import SEGMENTS_REVISION_KEY
from canaryflow.serving.client import Client
from canaryflow.serving.stream import new_request_id

VARIABLES_ATTRIBUTE = "canaryflow.variables"
TRACK_EVENTS = ("completion", "feedback", *IMPLICIT_EVENTS)
log = logging.getLogger(__name__)
T = TypeVar("T")
_NUMBER = (int, float)


class CanaryflowProvider(AbstractProvider):
    """Resolve canaryflow AI configs through the OpenFeature SDK.

    Args:
        client: the canaryflow :class:`~canaryflow.Client` (or a registry URL / ``None`` for
            ``CANARYFLOW_DB_URL`` to make one, closed on shutdown).
        variables: default prompt variables (the context's ``canaryflow.variables`` win).
        poll_interval: seconds between two revision checks of the event watcher; 0 turns it off.
        metrics: where tracked completions are counted (default: the client's traffic plane's; set its
            options with ``client.traffic(metrics=..., ...)`` before the provider is initialized).
        remember: request ids kept for tracking (the oldest are forgotten).

    Example::

        api.set_provider(CanaryflowProvider(canaryflow.Client()))
        ctx = EvaluationContext("user-1", {"beta": True, "canaryflow.variables": {"product": "Acme"}})
        cfg = api.get_client().get_object_value("support-bot", {}, ctx)
    """

    def __init__(self, client: Client | str | None = None, *, variables: Mapping[str, object] | None = None,
                 poll_interval: float = 1.0, metrics: Metrics | None = None, remember: int = 100_000) -> None:
        super().__init__()
        self._owned = not isinstance(client, Client)
        self.client = client if isinstance(client, Client) else Client(client)
        self.variables = dict(variables or {})
        self.poll_interval = poll_interval
        self._metrics = metrics
        self._recent: OrderedDict[str, Labels] = OrderedDict()
        self._remember = remember
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._revisions: dict[str, int] | None = None

    # ── lifecycle and events ───────────────────────────────────────────────────────────────────────
    def get_metadata(self) -> Metadata:
        """``Metadata(name="canaryflow")``."""
        return Metadata(name="canaryflow")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Check the registry is reachable, then start the change watcher."""
        try:
            self._revisions = self.client.registry.revisions()
        except CanaryflowError as exc:
            raise GeneralError(f"canaryflow registry unreachable: {exc}") from exc
        self.client.traffic()  # the traffic plane (metrics of tracked events) exists before any evaluation
        if self.poll_interval > 0 and self._watcher is None:
            self._stop.clear()
            self._watcher = threading.Thread(target=self._watch, name="canaryflow-openfeature", daemon=True)
            self._watcher.start()

    def shutdown(self) -> None:
        """Stop the watcher (and close the client if the provider made it)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(5)
            self._watcher = None
        if self._owned:
            self.client.close()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            self.check_changes()

    def check_changes(self) -> list[str]:
        """Compare the registry's revisions with the last seen; emit and return the changed keys."""
        try:
            now = self.client.registry.revisions()
        except CanaryflowError as exc:
            log.warning("canaryflow openfeature: revision check failed: %s", exc)
            return []
        before, self._revisions = self._revisions or {}, now
        if now == before:
            return []
        if now.get(SEGMENTS_REVISION_KEY) != before.get(SEGMENTS_REVISION_KEY):
            changed = sorted(k for k in now if k != SEGMENTS_REVISION_KEY)
        else:
            changed = sorted(k for k in set(now) | set(before)
                             if k != SEGMENTS_REVISION_KEY and now.get(k) != before.get(k))
        self.client.refresh(force=True)
        self.emit_provider_configuration_changed(ProviderEventDetails(
            flags_changed=changed, message="canaryflow serving state changed"))
        return changed

    # ── evaluation ─────────────────────────────────────────────────────────────────────────────────
    def resolve_object_details(self, flag_key: str,
                               default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
                               evaluation_context: EvaluationContext | None = None,
                               ) -> FlagResolutionDetails[Sequence[FlagValueType]
                                                          | Mapping[str, FlagValueType]]:
        """A whole config (or an object/list field of it)."""
        return self._details(flag_key, default_value, evaluation_context, (dict, list), "an object")

    def resolve_string_details(self, flag_key: str, default_value: str,
                               evaluation_context: EvaluationContext | None = None
                               ) -> FlagResolutionDetails[str]:
        """A string field, e.g. ``support-bot.model``."""
        return self._details(flag_key, default_value, evaluation_context, (str,), "a string")

    def resolve_boolean_details(self, flag_key: str, default_value: bool,
                                evaluation_context: EvaluationContext | None = None
                                ) -> FlagResolutionDetails[bool]:
        """A boolean field, e.g. ``support-bot.candidate``."""
        return self._details(flag_key, default_value, evaluation_context, (bool,), "a boolean")

    def resolve_integer_details(self, flag_key: str, default_value: int,
                                evaluation_context: EvaluationContext | None = None
                                ) -> FlagResolutionDetails[int]:
        """An integer field, e.g. ``support-bot.version`` or ``support-bot.parameters.max_tokens``."""
        return self._details(flag_key, default_value, evaluation_context, (int,), "an integer")

    def resolve_float_details(self, flag_key: str, default_value: float,
                              evaluation_context: EvaluationContext | None = None
                              ) -> FlagResolutionDetails[float]:
        """A number field, e.g. ``support-bot.parameters.temperature`` (integers are widened)."""
        return self._details(flag_key, default_value, evaluation_context, _NUMBER, "a number")

    # The async evaluations run in a worker thread: a cache refresh may query the registry.
    async def resolve_object_details_async(
            self, flag_key: str, default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
            evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        """:meth:`resolve_object_details`, off the event loop."""
        return await asyncio.to_thread(self.resolve_object_details, flag_key, default_value,
                                       evaluation_context)

    async def resolve_string_details_async(self, flag_key: str, default_value: str,
                                           evaluation_context: EvaluationContext | None = None
                                           ) -> FlagResolutionDetails[str]:
        """:meth:`resolve_string_details`, off the event loop."""
        return await asyncio.to_thread(self.resolve_string_details, flag_key, default_value,
                                       evaluation_context)

    async def resolve_boolean_details_async(self, flag_key: str, default_value: bool,
                                            evaluation_context: EvaluationContext | None = None
                                            ) -> FlagResolutionDetails[bool]:
        """:meth:`resolve_boolean_details`, off the event loop."""
        return await asyncio.to_thread(self.resolve_boolean_details, flag_key, default_value,
                                       evaluation_context)

    async def resolve_integer_details_async(self, flag_key: str, default_value: int,
                                            evaluation_context: EvaluationContext | None = None
                                            ) -> FlagResolutionDetails[int]:
        """:meth:`resolve_integer_details`, off the event loop."""
        return await asyncio.to_thread(self.resolve_integer_details, flag_key, default_value,
                                       evaluation_context)

    async def resolve_float_details_async(self, flag_key: str, default_value: float,
                                          evaluation_context: EvaluationContext | None = None
                                          ) -> FlagResolutionDetails[float]:
        """:meth:`resolve_float_details`, off the event loop."""
        return await asyncio.to_thread(self.resolve_float_details, flag_key, default_value,
                                       evaluation_context)

    def _details(self, flag_key: str, default: T, ctx: EvaluationContext | None,
                 types: tuple[type, ...], wanted: str) -> FlagResolutionDetails[T]:
        try:
            compiled, path = self._find(flag_key)
            context, variables = self._context(ctx)
            res = compiled.resolve(context, variables)
        except NotFound as exc:
            return _error(default, ErrorCode.FLAG_NOT_FOUND, str(exc))
        except RenderError as exc:
            return _error(default, ErrorCode.PARSE_ERROR, str(exc))
        except ValidationFailed as exc:
            return _error(default, ErrorCode.INVALID_CONTEXT, str(exc))
        except CanaryflowError as exc:
            return _error(default, ErrorCode.GENERAL, str(exc))
        request_id = new_request_id()
        value: Any = self.value_of(res, request_id)
        for i, name in enumerate(path):
            if not isinstance(value, dict) or name not in value:
                where = ".".join([compiled.key, *path[:i]])
                return _error(default, ErrorCode.FLAG_NOT_FOUND,
                              f"{where!r} has no field {name!r}" + (f" (fields: {', '.join(value)})"
                                                                     if isinstance(value, dict) else ""))
            value = value[name]
        bad_bool = isinstance(value, bool) and bool not in types
        if bad_bool or not isinstance(value, types):
            return _error(default, ErrorCode.TYPE_MISMATCH,
                          f"flag {flag_key!r} is {type(value).__name__} {value!r}, not {wanted}; "
                          "evaluate it with the matching type")
        if types is _NUMBER and isinstance(value, int | float):
            value = float(value)
        self._remember_request(request_id, res)
        return FlagResolutionDetails(value=value, reason=_reason(compiled, res), variant=res.variation,
                                     flag_metadata=_metadata(res, request_id))

    def _find(self, flag_key: str) -> tuple[CompiledConfig, list[str]]:
        """The config a flag key names (the longest existing prefix: config keys may contain dots)."""
        parts = flag_key.split(".")
        first: NotFound | None = None
        for cut in range(len(parts), 0, -1):
            try:
                return self.client.compiled(".".join(parts[:cut])), parts[cut:]
            except NotFound as exc:
                if first is None or not str(exc).startswith("unknown config"):
                    first = exc
        assert first is not None
        raise first

    def _context(self, ctx: EvaluationContext | None) -> tuple[dict[str, Any], dict[str, object]]:
        attributes = dict(ctx.attributes) if ctx is not None else {}
        given = attributes.pop(VARIABLES_ATTRIBUTE, None)
        if given is not None and not isinstance(given, Mapping):
            raise ValidationFailed(f"context attribute {VARIABLES_ATTRIBUTE!r} must be a mapping of prompt "
                                   "variables", source=VARIABLES_ATTRIBUTE)
        variables = {**self.variables, **(given or {})}
        user = (ctx.targeting_key if ctx is not None else None) or ""
        return {"key": user, "attributes": attributes}, variables

    def value_of(self, res: Resolution, request_id: str | None = None) -> dict[str, Any]:
        """The object value of a resolution (see the module docstring)."""
        value: dict[str, Any] = {
            "config": res.config_key, "version": res.version, "variation": res.variation,
            "segment": res.segment, "candidate": res.variation == "candidate", "provider": res.provider,
            "model": res.model, "messages": [dict(m) for m in res.messages],
            "parameters": dict(res.parameters), "tools": [dict(t) for t in res.tools],
            "fallback": [dict(f) for f in res.fallback], "reason": res.reason,
            "request_id": request_id or "",
        }
        if res.tool_choice is not None:
            value["tool_choice"] = res.tool_choice
        if res.response_format is not None:
            value["response_format"] = dict(res.response_format)
        return value

    # ── tracking ───────────────────────────────────────────────────────────────────────────────────
    def _remember_request(self, request_id: str, res: Resolution) -> None:
        self._recent[request_id] = Labels(res.config_key, res.version, res.variation, res.segment,
                                          res.provider, res.model)
        if len(self._recent) > self._remember:
            self._recent.popitem(last=False)

    def track(self, tracking_event_name: str, evaluation_context: EvaluationContext | None = None,
              tracking_event_details: TrackingEventDetails | None = None) -> None:
        """Record a ``completion``, ``feedback`` or implicit event for an evaluation's ``request_id``.

        Raises:
            ValidationFailed: an unknown event name, a missing/unknown ``request_id`` or a bad attribute.
        """
        details = tracking_event_details or TrackingEventDetails()
        attrs = dict(details.attributes)
        if tracking_event_name not in TRACK_EVENTS:
            raise ValidationFailed(f"unknown tracking event {tracking_event_name!r}: canaryflow tracks "
                                   f"{', '.join(TRACK_EVENTS)}", source="tracking_event_name")
        request_id = attrs.get("request_id")
        labels = self._recent.get(request_id) if isinstance(request_id, str) else None
        if labels is None:
            raise ValidationFailed("tracking needs attribute 'request_id': the request_id in the flag "
                                   f"metadata of a recent evaluation (got {request_id!r})",
                                   source="request_id")
        plane = self.client.traffic().plane
        if tracking_event_name == "feedback":
            sentiment: object = attrs.get("sentiment")
            if sentiment is None and details.value:
                sentiment = "positive" if details.value > 0 else "negative"
            comment = attrs.get("comment")
            plane.remember(str(request_id), labels)
            plane.feedback(str(request_id), str(sentiment), None if comment is None else str(comment))
            return
        if tracking_event_name in IMPLICIT_EVENTS:
            plane.remember(str(request_id), labels)
            plane.track(str(request_id), tracking_event_name,
                        details.value if tracking_event_name in VALUED_EVENTS else None)
            return
        outcome = attrs.get("outcome", "success")
        if outcome not in ("success", "error"):
            raise ValidationFailed(f"'outcome' must be 'success' or 'error', got {outcome!r}",
                                   source="outcome")
        record_request(
            labels, outcome=str(outcome),
            error_type=str(attrs.get("error_type", "other")) if outcome == "error" else None,
            finish_reason=str(attrs.get("finish_reason", "stop")), duration_s=details.value,
            input_tokens=_int(attrs, "input_tokens"), output_tokens=_int(attrs, "output_tokens"),
            cost_usd=float(_number(attrs, "cost_usd")), metrics=self._metrics or plane.metrics)
        plane.remember(str(request_id), labels)


def _number(attrs: Mapping[str, Any], name: str) -> float | int:
    value = attrs.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, _NUMBER) or value < 0:
        raise ValidationFailed(f"tracking attribute {name!r} must be a non-negative number, got {value!r}",
                               source=name)
    return value


def _int(attrs: Mapping[str, Any], name: str) -> int:
    value = _number(attrs, name)
    if not isinstance(value, int):
        raise ValidationFailed(f"tracking attribute {name!r} must be an integer, got {value!r}", source=name)
    return value


def _reason(compiled: CompiledConfig, res: Resolution) -> Reason:
    exposure = compiled.state.exposure
    kind = exposure.stage_kind if exposure.candidate_version is not None else None
    if res.variation == "pinned":
        return Reason.TARGETING_MATCH
    if kind == "segments" and (res.variation == "candidate" or res.segment in exposure.segments):
        # an exposed segment decided; with a holdback its users were then split by bucket
        return Reason.SPLIT if exposure.holdback else Reason.TARGETING_MATCH
    if kind == "percent":
        return Reason.SPLIT
    if kind == "full" or (kind in (None, "shadow") and not compiled.state.pins):
        return Reason.STATIC
    return Reason.DEFAULT


def _metadata(res: Resolution, request_id: str) -> dict[str, bool | int | float | str]:
    return {"config": res.config_key, "version": res.version, "variation": res.variation,
            "segment": res.segment, "provider": res.provider, "model": res.model, "request_id": request_id}


def _error(default: T, code: ErrorCode, message: str) -> FlagResolutionDetails[T]:
    return FlagResolutionDetails(value=default, reason=Reason.ERROR, error_code=code, error_message=message)


__all__ = ["TRACK_EVENTS", "VARIABLES_ATTRIBUTE", "CanaryflowProvider"]
