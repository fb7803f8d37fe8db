"""Group Security Associations: lifecycle of a MIKEY-keyed SRTP session (RFC 4046 §3.2, §4.4, §6).

A :class:`Gsa` ties together the Registration SA of the exchange (the CSB), the Rekey SA
information of the latest update, and the Data SA: live per-SSRC SRTP streams built from a
:class:`~mikey.keying.KeyingResult`. Its states and inputs are enums and its transitions a table::

    ESTABLISHING --KEYED--> ACTIVE --REKEY--> REKEYING --REKEY_DONE--> ACTIVE
    any state --TEARDOWN--> TORN_DOWN   (TORN_DOWN --TEARDOWN--> TORN_DOWN: idempotent)

An input with no table entry raises :class:`GsaStateError` and leaves the GSA as it was: the GSA
owns a live call's keys, so a misordered call from the glue must not drop them (a failed
establishment, in contrast, tears down with ``SETUP_FAILED``).

:class:`GsaRegistry` keys GSAs by a signalling-context key (SIP dialog id, RTSP session id) in a
:class:`GsaStore`. Every way a session ends - BYE, TEARDOWN, CANCEL, timeout, key expiry,
connection loss, shutdown - reaches :meth:`GsaRegistry.teardown`, which deallocates every libsrtp
context, overwrites every key buffer the GSA received (the KeyingResults' too), removes the GSA and
queues exactly one :class:`GsaTornDown`. Time is the caller's clock ``now`` (seconds, float).
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from mikey.keying import DataSaEntry, KeyingResult, RegistrationSa
from mikey.keying import TeardownReason as TeardownReason  # noqa: PLC0414 (re-exported)

from .context import DEFAULT_WINDOW_SIZE, InboundStream, OutboundStream, streams_for
from .errors import GsaStateError, KeyMaterialError, UnknownGsaError, UnsupportedPolicyError


class GsaState(enum.Enum):
    ESTABLISHING = "establishing"
    ACTIVE = "active"
    REKEYING = "rekeying"
    TORN_DOWN = "torn-down"


class GsaInput(enum.Enum):
    KEYED = "keyed"
    REKEY = "rekey"
    REKEY_DONE = "rekey-done"
    TEARDOWN = "teardown"


TRANSITIONS: dict[tuple[GsaState, GsaInput], GsaState] = {
    (GsaState.ESTABLISHING, GsaInput.KEYED): GsaState.ACTIVE,
    (GsaState.ESTABLISHING, GsaInput.TEARDOWN): GsaState.TORN_DOWN,
    (GsaState.ACTIVE, GsaInput.REKEY): GsaState.REKEYING,
    (GsaState.ACTIVE, GsaInput.TEARDOWN): GsaState.TORN_DOWN,
    # A further update during the overlap ends the previous overlap first (context.py).
    (GsaState.REKEYING, GsaInput.REKEY): GsaState.REKEYING,
    (GsaState.REKEYING, GsaInput.REKEY_DONE): GsaState.ACTIVE,
    (GsaState.REKEYING, GsaInput.TEARDOWN): GsaState.TORN_DOWN,
    (GsaState.TORN_DOWN, GsaInput.TEARDOWN): GsaState.TORN_DOWN,
}


def next_state(state: GsaState, event: GsaInput) -> GsaState:
    """The table lookup; raises GsaStateError for a pair not in :data:`TRANSITIONS`."""
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise GsaStateError(f"{event.value} is not allowed in state {state.value}") from None


@dataclass(frozen=True, slots=True)
class GsaEstablished:
    key: str
    csb_id: int
    outbound_ssrcs: tuple[int, ...]
    inbound_ssrcs: tuple[int, ...]
    at: float


@dataclass(frozen=True, slots=True)
class GsaRekeyed:
    key: str
    csb_id: int
    ssrcs: tuple[int, ...]
    at: float


@dataclass(frozen=True, slots=True)
class GsaRekeyCompleted:
    key: str
    at: float


@dataclass(frozen=True, slots=True)
class GsaTornDown:
    key: str
    reason: TeardownReason
    at: float | None


GsaEvent = GsaEstablished | GsaRekeyed | GsaRekeyCompleted | GsaTornDown


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What is still alive: all three are zero once every GSA is torn down."""

    live_gsas: int
    live_contexts: int
    unwiped_buffers: int

    @property
    def clean(self) -> bool:
        return self.live_gsas == 0 and self.live_contexts == 0 and self.unwiped_buffers == 0


@dataclass(frozen=True, slots=True)
class GsaConfig:
    """Per-registry policy. Times in seconds of the caller's clock; ``None`` disables a timer."""

    session_timeout: float | None = None
    key_lifetime: float | None = None
    rekey_overlap: float = 2.0
    window_size: int = DEFAULT_WINDOW_SIZE
    allow_repeat_tx: bool = False


class Gsa:
    """One GSA; built and driven by :class:`GsaRegistry`."""

    __slots__ = (
        "_results",
        "established_at",
        "inbound",
        "key",
        "keyed_at",
        "last_activity",
        "outbound",
        "registration",
        "rekey_deadline",
        "rekey_sa",
        "state",
        "torn_down_reason",
    )

    def __init__(self, key: str, result: KeyingResult, now: float) -> None:
        self.key = key
        self.state = GsaState.ESTABLISHING
        self.registration: RegistrationSa = result.registration
        self.rekey_sa: RegistrationSa | None = None
        self.outbound: dict[int, OutboundStream] = {}
        self.inbound: dict[int, InboundStream] = {}
        self.established_at = now
        self.keyed_at = now
        self.last_activity = now
        self.rekey_deadline: float | None = None
        self.torn_down_reason: TeardownReason | None = None
        self._results: list[KeyingResult] = [result]

    def _apply(self, event: GsaInput) -> None:
        self.state = next_state(self.state, event)

    @property
    def csb_id(self) -> int:
        return self.registration.csb_id

    def streams(self) -> Iterator[OutboundStream | InboundStream]:
        yield from self.outbound.values()
        yield from self.inbound.values()

    def outbound_stream(self, ssrc: int) -> OutboundStream:
        """The stream protecting our SSRC ``ssrc``."""
        try:
            return self.outbound[ssrc]
        except KeyError:
            raise KeyMaterialError(f"no outbound SRTP stream for SSRC {ssrc:#010x}") from None

    def inbound_stream(self, ssrc: int) -> InboundStream:
        """The stream verifying the peer's SSRC ``ssrc`` (0: the wildcard stream, if keyed so)."""
        stream = self.inbound.get(ssrc) or self.inbound.get(0)
        if stream is None:
            raise KeyMaterialError(f"no inbound SRTP stream for SSRC {ssrc:#010x}")
        return stream

    @property
    def live_contexts(self) -> int:
        return sum(s.libsrtp_sessions for s in self.streams())

    def key_buffers(self) -> Iterator[bytearray]:
        for result in self._results:
            for entry in result.data_sa:
                yield entry.master_key
                yield entry.master_salt

    def _close_and_wipe(self) -> tuple[int, list[OutboundStream | InboundStream]]:
        """Close every stream, wipe every key buffer; return how many buffers stayed non-zero
        and the streams whose libsrtp contexts did not close."""
        streams = list(self.streams())
        for stream in streams:
            stream.close()
        for result in self._results:
            result.wipe()
        failures = sum(1 for buf in self.key_buffers() if any(buf))
        self.outbound = {}
        self.inbound = {}
        self._results = []
        return failures, [s for s in streams if s.libsrtp_sessions]


class GsaStore(Protocol):
    """Where GSAs live: in process by default; a shared store could implement this later."""

    def get(self, key: str) -> Gsa | None: ...

    def put(self, key: str, gsa: Gsa) -> None: ...

    def pop(self, key: str) -> Gsa | None: ...

    def list_keys(self) -> list[str]: ...


class InMemoryGsaStore:
    """The default :class:`GsaStore`: a dict."""

    def __init__(self) -> None:
        self._items: dict[str, Gsa] = {}

    def get(self, key: str) -> Gsa | None:
        return self._items.get(key)

    def put(self, key: str, gsa: Gsa) -> None:
        self._items[key] = gsa

    def pop(self, key: str) -> Gsa | None:
        return self._items.pop(key, None)

    def list_keys(self) -> list[str]:
        return list(self._items)


#: events kept for :meth:`GsaRegistry.drain_events` before the oldest are dropped
MAX_QUEUED_EVENTS = 4096


class GsaRegistry:
    """All GSAs of a process, keyed by signalling context; see the module docstring."""

    def __init__(self, config: GsaConfig | None = None, store: GsaStore | None = None) -> None:
        self.config = config or GsaConfig()
        self._store: GsaStore = store if store is not None else InMemoryGsaStore()
        self._lock = threading.RLock()
        # bounded: a process that never drains events must not grow (oldest dropped first)
        self._events: deque[GsaEvent] = deque(maxlen=MAX_QUEUED_EVENTS)
        self._wipe_failures = 0
        # streams of torn-down GSAs whose libsrtp contexts did not close (counted by audit())
        self._unclosed: list[OutboundStream | InboundStream] = []

    # -- queries ---------------------------------------------------------------------------

    def get(self, key: str) -> Gsa:
        """The live GSA for ``key``; raises UnknownGsaError."""
        gsa = self._store.get(key)
        if gsa is None:
            raise UnknownGsaError(f"no GSA for {key!r}")
        return gsa

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._store.get(key) is not None

    def drain_events(self) -> list[GsaEvent]:
        """Events queued since the last call, oldest first."""
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events

    def audit(self) -> AuditReport:
        """This registry's live GSAs, the libsrtp contexts it created that are still alive
        (those of its live GSAs, and any a teardown failed to close) and key buffers not yet
        wiped. Other registries of the process are not counted (``srtp._libsrtp.live_sessions``
        gives the process-wide figure)."""
        with self._lock:
            gsas = [g for g in map(self._store.get, self._store.list_keys()) if g is not None]
            unwiped = sum(1 for g in gsas for buf in g.key_buffers() if any(buf))
            self._unclosed = [s for s in self._unclosed if s.libsrtp_sessions]
            contexts = sum(g.live_contexts for g in gsas)
            contexts += sum(s.libsrtp_sessions for s in self._unclosed)
            return AuditReport(
                live_gsas=len(gsas),
                live_contexts=contexts,
                unwiped_buffers=unwiped + self._wipe_failures,
            )

    # -- lifecycle -------------------------------------------------------------------------

    def establish(
        self,
        key: str,
        keying_result: KeyingResult,
        now: float,
        *,
        outbound_ssrcs: frozenset[int] | set[int] = frozenset(),
    ) -> Gsa:
        """Build the Data SA's SRTP streams for a new GSA (SSRCs in ``outbound_ssrcs`` are ours).

        On failure the keying result is wiped, a ``GsaTornDown(SETUP_FAILED)`` is queued and the
        error re-raised.
        """
        with self._lock:
            if self._store.get(key) is not None:
                keying_result.wipe()
                raise GsaStateError(f"a GSA for {key!r} exists already; re-key or tear it down")
            gsa = Gsa(key, keying_result, now)
            try:
                if not keying_result.data_sa:
                    raise KeyMaterialError("keying result has no Data SA entry")
                gsa.outbound, gsa.inbound = streams_for(
                    keying_result.data_sa,
                    outbound_ssrcs,
                    window_size=self.config.window_size,
                    allow_repeat_tx=self.config.allow_repeat_tx,
                )
            except BaseException:
                self._finish_teardown(gsa, TeardownReason.SETUP_FAILED, now)
                raise
            gsa._apply(GsaInput.KEYED)
            self._store.put(key, gsa)
            self._events.append(
                GsaEstablished(key, gsa.csb_id, tuple(gsa.outbound), tuple(gsa.inbound), now)
            )
            return gsa

    def rekey(
        self,
        key: str,
        keying_result: KeyingResult,
        now: float,
        *,
        outbound_ssrcs: frozenset[int] | set[int] = frozenset(),
    ) -> Gsa:
        """Install the new master keys of a CSB update (RFC 3830 §4.5) with a lossless overlap.

        SSRCs new to the GSA become new streams (outbound if listed in ``outbound_ssrcs``);
        existing ones keep their ROC and replay state. The overlap
        ends at ``now + config.rekey_overlap`` (see :meth:`expire`) or :meth:`finish_rekey`.
        """
        with self._lock:
            gsa = self._store.get(key)
            if gsa is None:
                keying_result.wipe()
                raise UnknownGsaError(f"no GSA for {key!r}")
            try:
                next_state(gsa.state, GsaInput.REKEY)
                if keying_result.registration.csb_id != gsa.csb_id:
                    raise KeyMaterialError("a re-key must carry the CSB ID of the GSA")
                groups = _group(keying_result.data_sa)
                if not groups:
                    raise KeyMaterialError("keying result has no Data SA entry")
                for ssrc, group in groups.items():
                    known = gsa.outbound.get(ssrc) or gsa.inbound.get(ssrc)
                    if known is not None:
                        if group[0].policy != known.policy:
                            raise UnsupportedPolicyError("re-key cannot change a stream's policy")
                        if (group[0].mki is None) == known.uses_mki:
                            raise KeyMaterialError("a re-key must keep the stream's MKI usage")
            except BaseException:
                keying_result.wipe()
                raise
            finished = self._retire_old(gsa) if gsa.state == GsaState.REKEYING else False
            new_out: list[DataSaEntry] = []
            new_in: list[DataSaEntry] = []
            for ssrc, group in groups.items():
                known = gsa.outbound.get(ssrc) or gsa.inbound.get(ssrc)
                if known is not None:
                    known.rekey(group)
                else:
                    (new_out if ssrc in outbound_ssrcs else new_in).extend(group)
            if new_out or new_in:
                out, inb = streams_for(
                    new_out + new_in,
                    outbound_ssrcs,
                    window_size=self.config.window_size,
                    allow_repeat_tx=self.config.allow_repeat_tx,
                )
                gsa.outbound.update(out)
                gsa.inbound.update(inb)
            gsa._results.append(keying_result)
            gsa.rekey_sa = keying_result.registration
            gsa.keyed_at = now
            gsa.last_activity = now
            gsa.rekey_deadline = now + self.config.rekey_overlap
            gsa._apply(GsaInput.REKEY)
            if finished:
                self._events.append(GsaRekeyCompleted(key, now))
            self._events.append(GsaRekeyed(key, gsa.csb_id, tuple(groups), now))
            return gsa

    def finish_rekey(self, key: str, now: float) -> None:
        """End the re-key overlap now: old master keys are refused and wiped."""
        with self._lock:
            gsa = self.get(key)
            next_state(gsa.state, GsaInput.REKEY_DONE)
            self._retire_old(gsa)
            gsa._apply(GsaInput.REKEY_DONE)
            gsa.rekey_deadline = None
            self._events.append(GsaRekeyCompleted(key, now))

    def _retire_old(self, gsa: Gsa) -> bool:
        """End every stream's overlap and wipe the keying results no stream uses any more."""
        for stream in gsa.streams():
            stream.finish_rekey()
        live = {id(e.master_key) for s in gsa.streams() for e in s.entries}
        keep: list[KeyingResult] = []
        for result in gsa._results:
            for e in result.data_sa:
                if id(e.master_key) not in live:
                    e.wipe()
                    self._wipe_failures += 0 if e.wiped else 1
            if any(id(e.master_key) in live for e in result.data_sa):
                keep.append(result)
        gsa._results = keep
        return True

    def touch(self, key: str, now: float) -> None:
        """Record signalling or media activity (resets the session timeout)."""
        with self._lock:
            self.get(key).last_activity = now

    def teardown(self, key: str, reason: TeardownReason, now: float | None) -> GsaTornDown | None:
        """Close, wipe and forget the GSA for ``key``; idempotent (None if nothing was left)."""
        with self._lock:
            gsa = self._store.pop(key)
            if gsa is None:
                return None
            return self._finish_teardown(gsa, reason, now)

    def _finish_teardown(self, gsa: Gsa, reason: TeardownReason, now: float | None) -> GsaTornDown:
        failures, unclosed = gsa._close_and_wipe()
        self._wipe_failures += failures
        self._unclosed.extend(unclosed)
        gsa._apply(GsaInput.TEARDOWN)
        gsa.torn_down_reason = reason
        event = GsaTornDown(gsa.key, reason, now)
        self._events.append(event)
        return event

    def teardown_all(
        self, reason: TeardownReason = TeardownReason.SHUTDOWN, now: float | None = None
    ) -> list[GsaTornDown]:
        """Tear every GSA down (process shutdown)."""
        with self._lock:
            events = [self.teardown(k, reason, now) for k in self._store.list_keys()]
        return [e for e in events if e is not None]

    def expire(self, now: float) -> list[GsaEvent]:
        """Run the timers due at ``now``: re-key overlaps, session timeouts, key lifetimes."""
        out: list[GsaEvent] = []
        with self._lock:
            cfg = self.config
            for key in self._store.list_keys():
                gsa = self._store.get(key)
                if gsa is None:
                    continue
                reason: TeardownReason | None = None
                if cfg.session_timeout is not None and now - gsa.last_activity >= (
                    cfg.session_timeout
                ):
                    reason = TeardownReason.TIMEOUT
                elif cfg.key_lifetime is not None and now - gsa.keyed_at >= cfg.key_lifetime:
                    reason = TeardownReason.KEY_EXPIRED
                if reason is not None:
                    event = self.teardown(key, reason, now)
                    if event is not None:
                        out.append(event)
                    continue
                if (
                    gsa.state == GsaState.REKEYING
                    and gsa.rekey_deadline is not None
                    and now >= gsa.rekey_deadline
                ):
                    self.finish_rekey(key, now)
                    out.append(GsaRekeyCompleted(key, now))
        return out


def _group(entries: tuple[DataSaEntry, ...]) -> dict[int, list[DataSaEntry]]:
    groups: dict[int, list[DataSaEntry]] = {}
    for e in entries:
        groups.setdefault(e.ssrc, []).append(e)
    return groups
