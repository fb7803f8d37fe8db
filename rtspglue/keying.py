"""MIKEY-keyed SRTP for the RTSP server and client (RFC 4567 §3.2, ONVIF Streaming §5.2.1).

This module binds the keying hooks of :mod:`rtspglue.server` / :mod:`rtspglue.client` to the
sans-IO exchanges of :mod:`mikey.exchange` and the GSA registry of :mod:`srtp.gsa`. It holds no
cryptography: MIKEY builds and verifies messages, libsrtp protects packets.

Which side provides the keys follows what the client sends in SETUP::

    server keys:  DESCRIBE  a=key-mgmt:mikey <I_MESSAGE>   (server = initiator, kept per
                                                           connection and path until SETUP)
                  SETUP     KeyMgmt: <R_MESSAGE>            (only when the mode has a response)
    client keys:  SETUP     KeyMgmt: <I_MESSAGE>            (server = responder; SSRC 0 entries
                                                           get the server's stream SSRC)
                  200 OK    KeyMgmt: <R_MESSAGE>, Transport: ...;ssrc=<server SSRC>

A SETUP I_MESSAGE that keys only other SSRCs (GStreamer rtspsrc keys its own RTCP this way) leaves
the server's keys in force and is kept in a second GSA for the peer's streams.

Server session states (``SessionContext.keying_state``)::

    (DESCRIBE) pending initiator --SETUP ok--> KEYED --SET_PARAMETER / GET_PARAMETER--> KEYED
               (DESCRIBE again, same connection and path: the same pending message)
                                 --SETUP bad--> 463, nothing kept
    KEYED --TEARDOWN / timeout / connection loss / shutdown--> GSA torn down (one call)

Identities: every re-key of a session must authenticate as the identity that keyed it, in both
directions (the server passes the session's owner to ``Responder.respond``, the client the server
identity of its Registration SA). ``required_identities`` restricts a presentation (path) to
clients that authenticate as one of the listed identities (RFC 3261 §19.1.4 comparison): a
client-keyed SETUP whose I_MESSAGE authenticates another (or no) initiator, or a server-keyed
SETUP whose answer does not carry an allowed responder identity bound to a certificate (DH and
RSA-R do; PSK, PK and DHHMAC answers, or no answer, do not), is refused with 463 and nothing is
kept. The NULL-KEMAC profile authenticates nobody.

Pre-authentication cost: building a DESCRIBE I_MESSAGE costs a signature (PK, RSA-R), a DH
exponentiation (DHHMAC) or both (DH) before the client has proved anything. A repeated DESCRIBE
on the same connection and path gets the pending message again (``describe_reuse_ttl``), and a
token bucket per source address (``describe_rate`` per second, ``describe_burst``) bounds how
many new ones are built for these modes; past it DESCRIBE raises :class:`RateLimited` (503 with
Retry-After), ``describe_stats.limited`` counts it and one INFO line per episode names the source.

Invariants: a refused exchange leaves no GSA and no key buffer (initiators are aborted, results
wiped); pending DESCRIBE initiators are bounded in number and age; every end of a session reaches
:meth:`srtp.gsa.GsaRegistry.teardown`. Re-keys keep the ROC of the running stream (ONVIF), and a
server-initiated re-key (GET_PARAMETER ``mikey``) switches the outbound key only after
``switch_delay`` so the client has the new key before the first packet protected with it.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from mikey.errors import MikeyError, reason
from mikey.exchange import (
    MODE_OF_INIT,
    Endpoint,
    EndpointOwner,
    ExchangeCompleted,
    ExchangeConfig,
    ExchangeRefused,
    Initiator,
    Responder,
    Rng,
    StreamSpec,
)
from mikey.identity import same_identity
from mikey.keying import KeyingResult, Mode, RegistrationSa, Role
from mikey.pki import StaticPskStore
from mikey.ratelimit import SourceRateLimiter
from sdp.keymgmt import KeyMgmtAttr
from srtp.errors import SrtpError
from srtp.gsa import Gsa, GsaRegistry
from srtp.gsa import TeardownReason as GsaReason

from .errors import KeyMgmtFailure, RateLimited
from .hooks import ConnectionInfo, MediaInfo, SessionContext, TeardownReason
from .keymgmt import KeyMgmtSpec, format_keymgmt

__all__ = [
    "COSTLY_MODES",
    "ClientKeyingStats",
    "DescribeStats",
    "KeyingSide",
    "MikeyClientKeying",
    "MikeyServerKeying",
    "gsa_reason",
    "is_initiator_message",
]

log = logging.getLogger(__name__)

Clock = Callable[[], float]


def gsa_reason(reason: TeardownReason) -> GsaReason:
    """The GSA teardown reason for an RTSP session end: the session's own (one vocabulary)."""
    return reason


def is_initiator_message(data: bytes) -> bool:
    """True when MIKEY ``data`` is an I_MESSAGE (RFC 3830 §6.1 data type), from its header."""
    return len(data) >= 2 and data[1] in {int(t) for t in MODE_OF_INIT}


def _mikey_specs(specs: Sequence[KeyMgmtSpec]) -> list[KeyMgmtSpec]:
    if specs and not any(s.prot == "mikey" for s in specs):
        raise KeyMgmtFailure("no mikey key management offered")  # RFC 4567 §3.2
    return [s for s in specs if s.prot == "mikey"]


class KeyingSide:
    """Which party provided the keys of a session."""

    SERVER = "server"
    CLIENT = "client"


def _start_initiator(
    endpoint: Endpoint, now: float, streams: Sequence[StreamSpec], **kw: object
) -> tuple[Initiator, bytes]:
    initiator = Initiator(endpoint)
    return initiator, initiator.start(now, streams, **kw)  # type: ignore[arg-type]


def _keys_of(outcome: ExchangeCompleted | ExchangeRefused) -> KeyingResult:
    """The keys of a completed exchange; the refusal's error is raised."""
    if not isinstance(outcome, ExchangeCompleted):
        raise outcome.error
    return outcome.result


def _endpoint_of(endpoint: Endpoint | ExchangeConfig, allow_null_kemac: bool, rng: Rng) -> Endpoint:
    """The binder's endpoint (its own, made with ``rng``, when given a configuration), under
    the NULL-KEMAC profile when that is allowed."""
    if not isinstance(endpoint, Endpoint):
        endpoint = Endpoint(endpoint, rng)
    if not allow_null_kemac:
        return endpoint
    return endpoint.with_config(_profile(endpoint.config, allow_null_kemac, endpoint.rng))


def _profile(config: ExchangeConfig, allow_null_kemac: bool, rng: Rng) -> ExchangeConfig:
    if not allow_null_kemac:
        return config
    profile = config.gstreamer_profile()
    if profile.psk is None:
        # NULL encryption and NULL MAC use no PSK-derived key; the exchange still looks one up.
        profile = replace(profile, psk=StaticPskStore({}, default=rng(16)))
    return profile


#: modes whose I_MESSAGE costs a signature or a DH exponentiation to build
COSTLY_MODES = frozenset({Mode.PK, Mode.DH, Mode.DHHMAC, Mode.RSA_R})
#: modes whose answer binds the responder's identity to its certificate (signed R_MESSAGE)
_SIGNED_ANSWER_MODES = frozenset({Mode.DH, Mode.RSA_R})


@dataclass(slots=True)
class DescribeStats:
    """What DESCRIBE cost the server: I_MESSAGEs built, pending ones sent again, 503s."""

    built: int = 0
    reused: int = 0
    limited: int = 0


@dataclass(eq=False, slots=True)
class _Pending:
    initiator: Initiator
    ssrc: int
    created: float
    message: bytes = field(default=b"", repr=False)


@dataclass(eq=False, slots=True)
class _ServerSession:
    side: str
    ssrc: int
    registration: RegistrationSa
    peer_identity: str | None
    peer_gsa: bool = False
    peer_csb: int | None = None
    next_keys: KeyingResult | None = field(default=None, repr=False)
    switch_at: float = 0.0
    rekeys: int = 0


class MikeyServerKeying(EndpointOwner):
    """:class:`rtspglue.server.ServerKeying` on MIKEY + SRTP; see the module docstring.

    ``config`` is the server's MIKEY configuration (real modes by default); with
    ``allow_null_kemac=True`` it is replaced by :meth:`ExchangeConfig.gstreamer_profile` (PSK
    with NULL KEMAC, the only form GStreamer and ONVIF devices speak: use it over RTSPS only).
    ``server_keys`` offers keys in DESCRIBE; ``client_keys`` accepts the client's I_MESSAGE in
    SETUP. GSAs live in ``registry`` keyed by the RTSP session id.

    ``required_identities`` maps a presentation path to the client identities allowed to key
    it (paths not listed: any). ``describe_rate`` / ``describe_burst`` configure the per-source
    bound on new DESCRIBE I_MESSAGEs in :data:`COSTLY_MODES` (``describe_rate=None``: no
    bound; ``describe_sources`` bounds the table); ``describe_reuse_ttl`` is how long a pending
    DESCRIBE message is sent again to the same connection (0: never). See the module docstring.
    """

    def __init__(
        self,
        endpoint: Endpoint | ExchangeConfig,
        *,
        registry: GsaRegistry | None = None,
        allow_null_kemac: bool = False,
        server_keys: bool = True,
        client_keys: bool = True,
        initial_roc: int = 0,
        clock: Clock = time.time,
        rng: Rng = os.urandom,
        max_pending: int = 4096,
        pending_ttl: float = 60.0,
        switch_delay: float = 0.2,
        required_identities: Mapping[str, Iterable[str]] | None = None,
        describe_rate: float | None = 5.0,
        describe_burst: int = 20,
        describe_sources: int = 4096,
        describe_reuse_ttl: float = 10.0,
    ) -> None:
        self.endpoint = _endpoint_of(endpoint, allow_null_kemac, rng)
        self.registry = registry if registry is not None else GsaRegistry()
        self.server_keys = server_keys
        self.client_keys = client_keys
        self.initial_roc = initial_roc
        self.clock = clock
        self.rng = self.endpoint.rng
        self.max_pending = max_pending
        self.pending_ttl = pending_ttl
        self.switch_delay = switch_delay
        self._pending: OrderedDict[tuple[int, str], _Pending] = OrderedDict()
        self.refused = 0
        self.required_identities: dict[str, frozenset[str]] = {
            _path(p): frozenset(ids) for p, ids in (required_identities or {}).items()
        }
        self.describe_reuse_ttl = describe_reuse_ttl
        self.describe_limiter: SourceRateLimiter | None = None
        if describe_rate is not None and self.config.mode in COSTLY_MODES:
            self.describe_limiter = SourceRateLimiter(
                describe_rate, describe_burst, describe_sources
            )
        self.describe_stats = DescribeStats()

    # -- identities ---------------------------------------------------------------------------

    def identity_allowed(self, path: str, identity: str | None) -> bool:
        """Whether an authenticated client ``identity`` may key presentation ``path``."""
        allowed = self.required_identities.get(_path(path))
        if allowed is None:
            return True
        return identity is not None and any(same_identity(identity, a) for a in allowed)

    def _authenticated(self, identity: str | None) -> str | None:
        # NULL KEMAC (the GStreamer profile) authenticates nobody: IDi/IDr are mere claims.
        return None if self.config.allow_null_kemac else identity

    def _server_answer_identity(self, registration: RegistrationSa) -> str | None:
        """The client identity a server-keyed exchange authenticated (signed answers only)."""
        if registration.mode not in _SIGNED_ANSWER_MODES or registration.t_responder is None:
            return None
        return self._authenticated(registration.responder_id)

    # -- DESCRIBE -----------------------------------------------------------------------------

    def describe_key_mgmt(self, connection: ConnectionInfo, media: MediaInfo) -> str | None:
        """Server-provided keys: the I_MESSAGE for the stream's SSRC (RFC 4567 §3.2)."""
        if not self.server_keys:
            return None
        if _path(media.path) in self.required_identities and (
            self.config.mode not in _SIGNED_ANSWER_MODES or self.config.allow_null_kemac
        ):
            return None  # server keys could never name the client: let it send its own
        now = self.clock()
        self._expire_pending(now)
        key = (connection.conn_id, media.path)
        old = self._pending.get(key)
        if (
            old is not None
            and old.ssrc == media.ssrc
            and now - old.created < self.describe_reuse_ttl
        ):
            # The same connection asks again: the message it already has, not a new signature.
            # (It keeps its place: the table stays in creation order for _expire_pending.)
            self.describe_stats.reused += 1
            return KeyMgmtAttr.from_message("mikey", old.message).encode_value()
        if self.describe_limiter is not None:
            wait, first = self.describe_limiter.take(connection.peer[0], now)
            if wait:
                self.describe_stats.limited += 1
                if first:
                    log.info(
                        "DESCRIBE from %s: over %g new MIKEY messages/s (burst %d); answering 503",
                        connection.peer[0],
                        self.describe_limiter.rate,
                        self.describe_limiter.burst,
                    )
                raise RateLimited(math.ceil(wait))
        stream = StreamSpec(media.ssrc, self.initial_roc, 0)
        try:
            initiator, message = _start_initiator(self.endpoint, now, [stream])
        except MikeyError:
            log.warning("cannot build the DESCRIBE MIKEY message", exc_info=False)
            return None
        self.describe_stats.built += 1
        old = self._pending.pop(key, None)
        if old is not None:
            old.initiator.abort()
        self._pending[key] = _Pending(initiator, media.ssrc, now, message)
        while len(self._pending) > self.max_pending:
            _, dropped = self._pending.popitem(last=False)
            dropped.initiator.abort()
        return KeyMgmtAttr.from_message("mikey", message).encode_value()

    def _expire_pending(self, now: float) -> None:
        while self._pending:
            key, oldest = next(iter(self._pending.items()))
            if now - oldest.created < self.pending_ttl:
                return
            del self._pending[key]
            oldest.initiator.abort()

    @property
    def pending(self) -> int:
        """DESCRIBE exchanges waiting for their SETUP."""
        return len(self._pending)

    def on_connection_closed(self, connection: ConnectionInfo) -> None:
        """Wipe the DESCRIBE exchanges of a connection that ended before its SETUP."""
        for key in [k for k in self._pending if k[0] == connection.conn_id]:
            self._pending.pop(key).initiator.abort()

    def close(self) -> None:
        """Abort every pending DESCRIBE exchange and tear every GSA down (shutdown)."""
        for pending in self._pending.values():
            pending.initiator.abort()
        self._pending.clear()
        self.registry.teardown_all(GsaReason.SHUTDOWN, self.clock())

    # -- SETUP --------------------------------------------------------------------------------

    def on_setup_key_mgmt(
        self, session: SessionContext, offers: tuple[KeyMgmtSpec, ...]
    ) -> str | None:
        """Key the session from SETUP's KeyMgmt; raise KeyMgmtFailure (463) when that fails."""
        now = self.clock()
        self._expire_pending(now)
        pending = self._pending.pop((session.connection.conn_id, session.media.path), None)
        if pending is not None and pending.ssrc != session.ssrc:
            pending.initiator.abort()
            pending = None
        try:
            specs = _mikey_specs(offers)
            message = specs[0].data if specs else None
            if message is not None and is_initiator_message(message):
                return self._setup_with_client_message(session, pending, message, now)
            if pending is None:
                raise KeyMgmtFailure("no key management for this stream")  # RFC 4567 §3.2
            initiator, pending = pending.initiator, None
            try:
                result = _keys_of(initiator.finish(message, now))
            except MikeyError:
                raise KeyMgmtFailure("key management response refused") from None
            client = self._server_answer_identity(result.registration)
            if not self.identity_allowed(session.media.path, client):
                self.endpoint.discard(result)
                raise KeyMgmtFailure("the client's identity may not key this presentation")
            self._establish(session, result, now, KeyingSide.SERVER, result.registration)
            return None
        except BaseException:
            self.refused += 1
            if pending is not None:
                pending.initiator.abort()
            raise

    def _setup_with_client_message(
        self, session: SessionContext, pending: _Pending | None, message: bytes, now: float
    ) -> str | None:
        reply = Responder(self.endpoint).respond(message, now, local_ssrcs=(session.ssrc,))
        if not isinstance(reply, ExchangeCompleted):
            raise KeyMgmtFailure("key management message refused")
        result = reply.result
        keys_ours = any(e.ssrc == session.ssrc for e in result.data_sa)
        if keys_ours or pending is None:
            if not keys_ours or not self.client_keys:
                self.endpoint.discard(result)
                raise KeyMgmtFailure("the client's keys do not cover the server's stream")
            client = self._authenticated(result.registration.initiator_id)
            if not self.identity_allowed(session.media.path, client):
                self.endpoint.discard(result)
                raise KeyMgmtFailure("the client's identity may not key this presentation")
            if pending is not None:
                pending.initiator.abort()
            self._establish(session, result, now, KeyingSide.CLIENT, result.registration)
            self.endpoint.commit(result)
        else:
            # Server keys stand; the I_MESSAGE keys the client's own streams (its RTCP).
            initiator = pending.initiator
            try:
                if initiator.expects_response:
                    raise KeyMgmtFailure("the server's keys were not answered")
                server_result = _keys_of(initiator.finish(None, now))
            except BaseException:
                self.endpoint.discard(result)
                initiator.abort()
                raise KeyMgmtFailure("the server's keys were not answered") from None
            client = self._server_answer_identity(server_result.registration)
            if not self.identity_allowed(session.media.path, client):
                self.endpoint.discard(server_result)
                self.endpoint.discard(result)
                raise KeyMgmtFailure("the client's identity may not key this presentation")
            self._establish(
                session, server_result, now, KeyingSide.SERVER, server_result.registration
            )
            state = session.keying_state
            assert isinstance(state, _ServerSession)
            try:
                self.registry.establish(_peer_key(session), result, now)
            except SrtpError:
                raise KeyMgmtFailure("the client's keys cannot be used") from None
            self.endpoint.commit(result)
            state.peer_gsa = True
            state.peer_csb = result.registration.csb_id
        if reply.answer is None:
            return None
        return format_keymgmt([KeyMgmtSpec("mikey", session.media.control, reply.answer)])

    def _establish(
        self,
        session: SessionContext,
        result: KeyingResult,
        now: float,
        side: str,
        registration: RegistrationSa,
    ) -> Gsa:
        if registration.role is Role.INITIATOR:
            peer = registration.responder_id
        else:
            peer = registration.initiator_id
        session.keying_state = _ServerSession(side, session.ssrc, registration, peer)
        try:
            return self.registry.establish(
                session.session_id, result, now, outbound_ssrcs={session.ssrc}
            )
        except SrtpError:
            raise KeyMgmtFailure("the negotiated keys cannot be used") from None

    # -- media --------------------------------------------------------------------------------

    def protector(self, session: SessionContext, ssrc: int) -> Callable[[bytes], bytes]:
        """SRTP-protect each packet with the session's outbound stream (newest key)."""
        gsa = self.registry.get(session.session_id)
        stream = gsa.outbound_stream(ssrc)
        state = session.keying_state
        assert isinstance(state, _ServerSession)
        key = session.session_id

        def protect(packet: bytes) -> bytes:
            if state.next_keys is not None and self.clock() >= state.switch_at:
                self._switch(key, state)
            return stream.protect(packet)

        return protect

    def _switch(self, key: str, state: _ServerSession) -> None:
        result, state.next_keys = state.next_keys, None
        assert result is not None
        self.registry.rekey(key, result, self.clock(), outbound_ssrcs={state.ssrc})
        state.registration = result.registration
        state.rekeys += 1

    # -- re-keying ----------------------------------------------------------------------------

    def on_set_parameter_mikey(
        self, session: SessionContext, specs: tuple[KeyMgmtSpec, ...]
    ) -> None:
        """A re-key from the client (ONVIF ``mikey:`` / GStreamer ``KeyMgmt:`` body)."""
        state = session.keying_state
        if not isinstance(state, _ServerSession):
            raise KeyMgmtFailure("session is not keyed")
        mikey = _mikey_specs(specs)
        if not mikey:
            raise KeyMgmtFailure("no mikey message")
        # RFC 3830 §4.5: the same CSB, and the peer that keyed the session
        self._rekey(session, state, mikey[0].data, state.peer_identity)

    def on_foreign_set_parameter_mikey(
        self,
        session: SessionContext,
        specs: tuple[KeyMgmtSpec, ...],
        connection: ConnectionInfo,
    ) -> None:
        """A re-key sent on another connection than the session's (a client that reconnected).

        Accepted only as a fresh I_MESSAGE for the session's CSB that authenticates as exactly
        the identity that keyed the session; a session keyed without a (authenticated) identity
        cannot be re-keyed from elsewhere. The server answers every refusal with 454.
        """
        state = session.keying_state
        if not isinstance(state, _ServerSession):
            raise KeyMgmtFailure("session is not keyed")
        owner = self._authenticated(state.peer_identity)
        if owner is None:
            raise KeyMgmtFailure("the session has no identity to re-key it from elsewhere")
        mikey = _mikey_specs(specs)
        if not mikey or not is_initiator_message(mikey[0].data):
            raise KeyMgmtFailure("no MIKEY I_MESSAGE")
        self._rekey(session, state, mikey[0].data, owner)

    def _rekey(
        self, session: SessionContext, state: _ServerSession, message: bytes, owner: str | None
    ) -> None:
        now = self.clock()
        reply = Responder(self.endpoint).respond(
            message,
            now,
            local_ssrcs=(state.ssrc,),
            expected_csb=state.registration.csb_id,  # RFC 3830 §4.5: same CSB
            expected_initiator=owner,  # ... and the peer that keyed the session
        )
        if not isinstance(reply, ExchangeCompleted):
            raise KeyMgmtFailure("re-key refused")
        if state.next_keys is not None:
            self.endpoint.discard(state.next_keys)
            state.next_keys = None
        try:
            self.registry.rekey(session.session_id, reply.result, now, outbound_ssrcs={state.ssrc})
        except SrtpError:
            self.endpoint.discard(reply.result)
            raise KeyMgmtFailure("re-key cannot be applied") from None
        self.endpoint.commit(reply.result)
        state.registration = reply.result.registration
        state.rekeys += 1

    def on_get_parameter_mikey(self, session: SessionContext) -> bytes:
        """A fresh MIKEY message for the session's CSB carrying the stream's current ROC.

        The server is the initiator (same CSB ID, RFC 3830 §4.5); the new keys take over the
        outbound stream ``switch_delay`` seconds later. Only modes without a response message
        (PSK, PK without V) can be answered this way; the others get 463.
        """
        state = session.keying_state
        if not isinstance(state, _ServerSession):
            raise KeyMgmtFailure("session is not keyed")
        now = self.clock()
        try:
            stream = self.registry.get(session.session_id).outbound_stream(state.ssrc)
            roc = stream.roc
        except SrtpError:
            raise KeyMgmtFailure("session has no outbound stream") from None
        config = replace(self.config, peer_identity=state.peer_identity or None)
        if config.mode in (Mode.PSK, Mode.PK) and config.verify:
            config = replace(config, verify=False)
        if config.mode not in (Mode.PSK, Mode.PK):
            raise KeyMgmtFailure("this MIKEY mode cannot be re-keyed without a response")
        try:
            initiator, message = _start_initiator(
                self.endpoint.with_config(config),
                now,
                [StreamSpec(state.ssrc, roc, 0)],
                rekey_of=state.registration,
            )
            result = _keys_of(initiator.finish(None, now))
        except MikeyError:
            raise KeyMgmtFailure("cannot build a MIKEY message") from None
        if state.next_keys is not None:
            self.endpoint.discard(state.next_keys)
        state.next_keys = result
        state.switch_at = now + self.switch_delay
        return message

    # -- teardown -----------------------------------------------------------------------------

    def on_teardown(self, session: SessionContext, reason: TeardownReason) -> None:
        """Every end of a session: tear its GSA(s) down, wipe keys not yet installed."""
        now = self.clock()
        pending = self._pending.pop((session.connection.conn_id, session.media.path), None)
        if pending is not None and pending.ssrc == session.ssrc:
            pending.initiator.abort()
        elif pending is not None:
            self._pending[(session.connection.conn_id, session.media.path)] = pending
        state = session.keying_state
        if isinstance(state, _ServerSession):
            if state.next_keys is not None:
                self.endpoint.discard(state.next_keys)
                state.next_keys = None
            # the CSBs end with the session: nobody may re-key them any more (RFC 3830 §4.5)
            self.endpoint.forget(state.registration.csb_id)
            if state.peer_csb is not None:
                self.endpoint.forget(state.peer_csb)
            if state.peer_gsa:
                self.registry.teardown(_peer_key(session), reason, now)
        self.registry.teardown(session.session_id, reason, now)
        session.keying_state = None


def _peer_key(session: SessionContext) -> str:
    return f"{session.session_id}#peer"


def _path(path: str) -> str:
    return "/" + path.strip("/")


@dataclass(slots=True)
class ClientKeyingStats:
    """What the client's SRTP path saw."""

    decrypted: int = 0
    rejected: int = 0
    rekeys: int = 0


_client_ids = itertools.count(1)


class MikeyClientKeying(EndpointOwner):
    """:class:`rtspglue.client.ClientKeying` on MIKEY + SRTP; see the module docstring.

    By default the client answers the server's DESCRIBE keys (verifying them before PLAY);
    ``client_keys=True`` makes it send its own I_MESSAGE in SETUP instead (ONVIF). With
    ``allow_null_kemac=True`` the GStreamer profile is used and, like rtspsrc, the client also
    sends an I_MESSAGE keying its own (RTCP) SSRC when the server's keys need no answer.
    """

    def __init__(
        self,
        endpoint: Endpoint | ExchangeConfig,
        *,
        registry: GsaRegistry | None = None,
        allow_null_kemac: bool = False,
        client_keys: bool = False,
        clock: Clock = time.time,
        rng: Rng = os.urandom,
        key: str | None = None,
    ) -> None:
        self.endpoint = _endpoint_of(endpoint, allow_null_kemac, rng)
        self.null_kemac = allow_null_kemac
        self.registry = registry if registry is not None else GsaRegistry()
        self.client_keys = client_keys
        self.clock = clock
        self.rng = self.endpoint.rng
        self.key = key or f"rtsp-client-{next(_client_ids)}"
        self.stats = ClientKeyingStats()
        self.side: str | None = None
        self.registration: RegistrationSa | None = None
        self.own_ssrc: int | None = None
        self.torn_down: GsaReason | None = None
        self._initiator: Initiator | None = None
        self._answered: KeyingResult | None = None
        self._own: KeyingResult | None = None

    # -- SETUP --------------------------------------------------------------------------------

    def setup_key_mgmt(self, control: str, offered: tuple[KeyMgmtSpec, ...]) -> bytes | None:
        """Answer the server's DESCRIBE keys, or send our own I_MESSAGE (client keys)."""
        self._discard_pending()
        now = self.clock()
        specs = _mikey_specs(offered)
        if specs and not self.client_keys:
            reply = Responder(self.endpoint).respond(specs[0].data, now)
            if not isinstance(reply, ExchangeCompleted):
                raise KeyMgmtFailure(
                    "the server's key management message was refused",
                    detail=reason(reply.error),
                )
            self._answered = reply.result
            self.side = KeyingSide.SERVER
            if reply.answer is not None or not self.null_kemac:
                return reply.answer
            # GStreamer form: key our own (RTCP) SSRC the way rtspsrc does.
            self.own_ssrc = int.from_bytes(self.rng(4), "big") or 1
            initiator, message = _start_initiator(
                self.endpoint, now, [StreamSpec(self.own_ssrc, 0, 0)]
            )
            self._own = _keys_of(initiator.finish(None, now))
            return message
        try:
            initiator, message = _start_initiator(self.endpoint, now, [StreamSpec(0, 0, 0)])
        except MikeyError as exc:
            raise KeyMgmtFailure(
                "cannot build the key management message", detail=reason(exc)
            ) from None
        self._initiator = initiator
        self.side = KeyingSide.CLIENT
        return message

    def on_setup_reply(self, keymgmt: tuple[KeyMgmtSpec, ...], ssrc: int | None) -> None:
        """Finish the exchange with the server's KeyMgmt reply and build the inbound stream."""
        now = self.clock()
        if self._initiator is not None:
            initiator, self._initiator = self._initiator, None
            specs = _mikey_specs(keymgmt)
            answer = specs[0].data if specs and initiator.expects_response else None
            try:
                result = _keys_of(initiator.finish(answer, now))
            except MikeyError as exc:
                raise KeyMgmtFailure(
                    "the server's key management answer was refused", detail=reason(exc)
                ) from None
        elif self._answered is not None:
            result, self._answered = self._answered, None
        else:
            raise KeyMgmtFailure("SETUP answered without key management")
        if (
            ssrc is not None
            and result.data_sa
            and all(e.ssrc not in (0, ssrc) for e in result.data_sa)
        ):
            self.endpoint.discard(result)
            raise KeyMgmtFailure("the keys do not cover the server's stream")
        own, self._own = self._own, None
        try:
            self.registry.establish(self.key, result, now)
            if own is not None:  # our own (RTCP) SSRC: a CSB of its own, a GSA of its own
                self.registry.establish(self.own_key, own, now, outbound_ssrcs={self.own_ssrc or 0})
        except SrtpError:
            self.registry.teardown(self.key, GsaReason.SETUP_FAILED, now)
            raise KeyMgmtFailure("the negotiated keys cannot be used") from None
        self.endpoint.commit(result)  # when we answered the server's keys: its CSB is ours
        self.registration = result.registration

    def unprotector(self, ssrc: int | None) -> Callable[[bytes], bytes]:
        """SRTP-unprotect each received packet with the inbound stream.

        Keys we sent before the server named its SSRC key a wildcard stream (SSRC 0); a server
        re-key (GET_PARAMETER ``mikey``) names the SSRC, so the registry gives it a stream of
        its own. Until that stream has verified a packet, packets still go to the old one (the
        server switches keys ``switch_delay`` later); from then on only the new one is used.
        """
        stats = self.stats
        gsa = self.registry.get(self.key)
        current = [gsa.inbound_stream(ssrc or 0)]

        def unprotect(packet: bytes) -> bytes:
            active = current[0]
            newer = gsa.inbound.get(ssrc) if ssrc else None
            try:
                if newer is not None and newer is not active:
                    try:
                        out = newer.unprotect(packet)
                    except SrtpError:
                        out = active.unprotect(packet)  # still the old key
                    else:
                        current[0] = newer
                else:
                    out = active.unprotect(packet)
            except SrtpError:
                stats.rejected += 1
                raise
            stats.decrypted += 1
            return out

        return unprotect

    # -- re-keying ----------------------------------------------------------------------------

    @property
    def own_key(self) -> str:
        """Registry key of the GSA for our own (RTCP) SSRC, if any."""
        return f"{self.key}#own"

    def rekey_message(self) -> bytes:
        """A client-initiated re-key of the session's CSB (SET_PARAMETER); keys installed now.

        The inbound stream keeps accepting the old key during the registry's overlap, so no
        packet is lost while the server switches.
        """
        reg = self.registration
        if reg is None:
            raise KeyMgmtFailure("no keyed session")
        now = self.clock()
        gsa = self.registry.get(self.key)
        # A wildcard stream (SSRC 0: keys sent before the server named its SSRC) stays one;
        # its ROC is the server's to keep (it never resets on a re-key, ONVIF).
        streams = [StreamSpec(ssrc, s.roc if ssrc else 0, 0) for ssrc, s in gsa.inbound.items()]
        config = self.config
        if config.mode in (Mode.PSK, Mode.PK) and config.verify:
            config = replace(config, verify=False)
        if config.mode not in (Mode.PSK, Mode.PK):
            raise KeyMgmtFailure("this MIKEY mode cannot re-key without a response")
        if reg.role is Role.RESPONDER:
            config = replace(config, peer_identity=reg.initiator_id or config.peer_identity)
        try:
            initiator, message = _start_initiator(
                self.endpoint.with_config(config), now, streams, rekey_of=reg
            )
            result = _keys_of(initiator.finish(None, now))
        except MikeyError:
            raise KeyMgmtFailure("cannot build the re-key message") from None
        try:
            self.registry.rekey(self.key, result, now)
        except SrtpError:
            raise KeyMgmtFailure("re-key cannot be applied") from None
        self.stats.rekeys += 1
        return message

    def accept_server_message(self, message: bytes) -> KeyingResult:
        """Install a server-initiated MIKEY message (GET_PARAMETER ``mikey``) for our CSB.

        Only the server identity that keyed the session may re-key it (the initiator of the
        Registration SA when we answered the server's keys, its responder when we sent ours;
        None: a message without identity). Returns the (non-secret view of the) installed
        keying result; raises KeyMgmtFailure.
        """
        reg = self.registration
        if reg is None:
            raise KeyMgmtFailure("no keyed session")
        server = reg.initiator_id if reg.role is Role.RESPONDER else reg.responder_id
        now = self.clock()
        reply = Responder(self.endpoint).respond(
            message, now, expected_csb=reg.csb_id, expected_initiator=server
        )
        if not isinstance(reply, ExchangeCompleted):
            raise KeyMgmtFailure("the server's MIKEY message was refused")
        try:
            self.registry.rekey(self.key, reply.result, now)
        except SrtpError:
            self.endpoint.discard(reply.result)
            raise KeyMgmtFailure("re-key cannot be applied") from None
        self.endpoint.commit(reply.result)
        self.stats.rekeys += 1
        return reply.result

    # -- teardown -----------------------------------------------------------------------------

    def on_teardown(self, reason: TeardownReason) -> None:
        """The RTSP session ended: tear the GSA down."""
        self._end(reason)

    def close(self) -> None:
        """Wipe anything pending and tear the GSA down (exit, failed SETUP); idempotent."""
        self._end(GsaReason.SHUTDOWN)

    def _end(self, reason: GsaReason) -> None:
        self._discard_pending()
        if self.registration is not None:
            self.endpoint.forget(self.registration.csb_id)
        self.registry.teardown(self.own_key, reason, self.clock())
        event = self.registry.teardown(self.key, reason, self.clock())
        if event is not None and self.torn_down is None:
            self.torn_down = reason

    def _discard_pending(self) -> None:
        if self._initiator is not None:
            self._initiator.abort()
            self._initiator = None
        for result in (self._answered, self._own):
            self.endpoint.discard(result)  # staged, never committed: nothing to forget
        self._answered = self._own = None
