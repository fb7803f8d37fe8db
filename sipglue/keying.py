"""MIKEY in SIP offer/answer (RFC 4567 §3.1): the keying binder for :class:`~sipglue.ua.UserAgent`.

:class:`MikeyCallKeying` implements :class:`~sipglue.ua.OfferAnswerHandler`. It translates SDP
``a=key-mgmt:mikey`` lines to MIKEY bytes and back, drives the sans-IO exchanges of
:mod:`mikey.exchange`, and hands every keying result to a :class:`~srtp.gsa.GsaRegistry` keyed by
the SIP dialog id. The call and its keys complete, or fail, together (RFC 4046 §4.1)::

    UAC  offer()        I_MESSAGE (our SSRC, 0 for the peer's) -> INVITE  (pending initiator)
    UAS  on_offer()     Responder.respond(local_ssrcs=[our SSRC]) -> 200 OK with R_MESSAGE
                        -> GSA established            | refusal -> 488/606 + Warning (+ ERR)
    UAC  on_answer()    Initiator.finish -> GSA       | refusal -> the UA ACKs, then BYEs
    either on_terminated()  BYE / CANCEL / timeout / connection loss / shutdown / failure
                        -> GsaRegistry.teardown (one call, idempotent)
    re-INVITE with key-mgmt in the same CSB (rekey_of=) -> GsaRegistry.rekey

Decisions where RFC 4567 is silent:

* **No MIKEY response** (PSK or PK without V): the 200 OK answer carries *no* ``a=key-mgmt``
  line (echoing the I_MESSAGE would look like a new offer). A UAC expecting no response refuses
  an answer that does carry one. Because no R_MESSAGE fills in the UAS's SSRC, the UAC keys the
  peer's stream with the SSRC-any wildcard (SSRC 0, libsrtp ``ssrc_any_inbound``); the UAS fills
  that crypto session with its own SSRC. Use V (``ExchangeConfig.verify``) when the UAC must know
  the UAS really keyed the call.
* **Refusals**: 606 when no retry could succeed (a data type / mode we do not run: ERR
  ``INVALID_DT`` or ``UNSUPPORTED_MESSAGE_TYPE``), 488 otherwise; always a Warning
  ``399 <host> "MIKEY: <error name>"``, and when the mode allows a MIKEY error message, an SDP
  body carrying it in ``a=key-mgmt`` at the offer's level (every stream rejected with port 0).
* **Identities** (RFC 4567 §5, RFC 3830 §4.3): the party the SIP signalling names is the party
  the keys are bound to. The UAC's initiator expects the responder to be the AOR of the
  Request-URI (:meth:`SipUri.aor`) unless ``config.peer_identity`` names it explicitly; the
  UAS's responder expects the initiator to be the AOR of the INVITE's From. A re-key, by either
  side, expects the identity that keyed the call. A mismatch refuses the offer with 488 and a
  Warning ``MIKEY: INVALID_ID`` plus a fixed phrase (:data:`IDENTITY_WARNING`,
  :data:`REKEY_IDENTITY_WARNING`), never the exception's text; a UAC that refuses an answer
  raises :class:`KeyingError` whose ``detail`` names the cause for the local user only.
  :meth:`MikeyCallKeying.local_aor` offers the MIKEY identity (a SIP URI) to the UA as its From.
* **Re-key without media loss**: the UAS installs the new *inbound* keys before it answers and
  switches its *outbound* stream only when the ACK arrives; the UAC (which receives the 200 OK
  after the UAS could already decrypt the new keys) installs both at once. The old keys stay
  accepted for ``GsaConfig.rekey_overlap`` seconds. A re-INVITE without key-mgmt keeps the keys.

Retransmitted INVITEs never reach this binder: the transaction layer absorbs them and re-sends
the same 2xx (so the responder's replay cache sees each I_MESSAGE once).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from mikey.errors import MikeyError
from mikey.exchange import (
    Endpoint,
    EndpointOwner,
    ExchangeCompleted,
    ExchangeConfig,
    Initiator,
    Responder,
    Rng,
    StreamSpec,
)
from mikey.keying import DataSaEntry, KeyingResult, Mode, RegistrationSa, Role
from mikey.registry import ErrorNo
from srtp.context import InboundStream, OutboundStream
from srtp.errors import SrtpError
from srtp.gsa import GsaRegistry
from srtp.gsa import TeardownReason as GsaReason

from .errors import Rejected, SdpError, SdpNegotiationError, SipError, SipParseError
from .message import SipUri
from .sdp import (
    KeyMgmtAttr,
    MediaDescription,
    SessionDescription,
    accepted_media_index,
    build_audio_answer,
    build_audio_offer,
    choose_key_mgmt,
)
from .transport import Address
from .ua import Call, TerminationReason, UserAgent

__all__ = [
    "IDENTITY_WARNING",
    "REKEY_IDENTITY_WARNING",
    "CallKeyed",
    "CallKeyingFailed",
    "CallKeys",
    "CallKeysTornDown",
    "CallRekeyed",
    "KeyingError",
    "LocalMedia",
    "MikeyCallKeying",
    "RegistryStreamSource",
    "gsa_reason",
    "status_for",
]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
KMPID = "mikey"
SECURE_PROTOS = ("RTP/SAVP", "RTP/SAVPF")


# RFC 4567 §3.1 / RFC 3261 §21.6.4: 606 when the offer can never be acceptable here.
_NEVER_ACCEPTABLE = frozenset({ErrorNo.INVALID_DT, ErrorNo.UNSUPPORTED_MESSAGE_TYPE})


#: Warning phrase of an INVALID_ID refusal of a new call (RFC 4567 §5): fixed, never echoed input.
IDENTITY_WARNING = "MIKEY: INVALID_ID: identity does not match the SIP party"
#: ... and of a re-key by another identity than the one that keyed the call (RFC 3830 §4.5).
REKEY_IDENTITY_WARNING = "MIKEY: INVALID_ID: identity is not the one that keyed this call"


class KeyingError(SipError):
    """The UAC could not build an offer, or could not accept an answer's keys (the UA then
    ACKs and BYEs the call).

    ``detail`` is one sentence naming the cause (e.g. which identity did not match which), for
    the local user: it never goes to the peer.
    """

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail if detail is not None else message


def gsa_reason(reason: TerminationReason) -> GsaReason:
    """The GSA teardown reason for a SIP call ending: the call's own (one vocabulary)."""
    return reason


def status_for(error: MikeyError) -> int:
    """The SIP status refusing an offer whose MIKEY exchange raised ``error`` (488 or 606)."""
    return 606 if error.error_no in _NEVER_ACCEPTABLE else 488


def _error_name(error: MikeyError) -> str:
    try:
        return ErrorNo(error.error_no).name
    except ValueError:
        return "UNSPECIFIED"


@dataclass(frozen=True, slots=True)
class LocalMedia:
    """Where our end of the audio stream lives and the SSRC it sends with."""

    address: str
    port: int
    ssrc: int


@dataclass(eq=False, slots=True)
class CallKeys:
    """The keying state of one keyed call (no secrets: those live in the GSA)."""

    key: str  # dialog id = GSA registry key
    role: Role
    mode: Mode
    local: LocalMedia
    remote_ssrc: int  # 0: SSRC-any wildcard (no MIKEY response filled it in)
    remote_media: Address | None
    registration: RegistrationSa
    rekeys: int = 0


@dataclass(frozen=True, slots=True)
class CallKeyed:
    key: str
    csb_id: int
    mode: Mode
    role: Role


@dataclass(frozen=True, slots=True)
class CallRekeyed:
    key: str
    csb_id: int


@dataclass(frozen=True, slots=True)
class CallKeyingFailed:
    """A call's keys were refused: ``warning`` is what the peer was told (fixed phrases),
    ``detail`` the local cause in one sentence (the MIKEY error's text; never sent)."""

    call_id: str
    status: int
    warning: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class CallKeysTornDown:
    key: str
    reason: GsaReason


KeyingEvent = CallKeyed | CallRekeyed | CallKeyingFailed | CallKeysTornDown


class RegistryStreamSource:
    """A :class:`srtp.media.StreamSource` that looks the call's GSA up per packet.

    A media transport can be opened (and its port put into SDP) before the keys exist; after the
    GSA is torn down every lookup fails, so no packet is protected or accepted with old keys.
    """

    def __init__(self, registry: GsaRegistry, key: str) -> None:
        self.registry = registry
        self.key = key

    def outbound_stream(self, ssrc: int) -> OutboundStream:
        return self.registry.get(self.key).outbound_stream(ssrc)

    def inbound_stream(self, ssrc: int) -> InboundStream:
        return self.registry.get(self.key).inbound_stream(ssrc)


@dataclass(eq=False, slots=True)
class _Pending:
    initiator: Initiator = field(repr=False)
    local: LocalMedia
    rekey_of: str | None  # dialog id for a re-key


LocalMediaFactory = Callable[[Call, SessionDescription], Awaitable[LocalMedia]]


def _peer_identity(reg: RegistrationSa) -> str | None:
    return reg.initiator_id if reg.role is Role.RESPONDER else reg.responder_id


def _aor(uri: str | SipUri) -> str | None:
    """The AOR of a SIP URI (None when ``uri`` is not one)."""
    try:
        return (uri if isinstance(uri, SipUri) else SipUri.parse(uri)).aor()
    except SipParseError:
        return None


@functools.lru_cache(maxsize=64)
def _identity_uri(identity: str) -> SipUri | None:
    """An identity as a SIP URI (None for an NAI, ``tel:`` ...); cached: asked per request."""
    try:
        return SipUri.parse(identity)
    except SipParseError:
        return None


def _sentence(exc: BaseException) -> str:
    """A MIKEY/SRTP/SDP error as the one-sentence local detail (core messages hold no secrets)."""
    text = str(exc) or type(exc).__name__
    return text[:1].upper() + text[1:]


def _mikey_attrs(sdp: SessionDescription, index: int) -> list[KeyMgmtAttr]:
    return [a for a in sdp.effective_key_mgmt(index) if a.prot.lower() == KMPID]


def _offered_audio(offer: SessionDescription) -> int | None:
    for index, media in enumerate(offer.media):
        if media.media == "audio" and media.port != 0 and media.proto in SECURE_PROTOS:
            return index
    return None


def _remote_media(sdp: SessionDescription, index: int) -> Address | None:
    conn = sdp.effective_connection(index)
    port = sdp.media[index].port
    if conn is None or port == 0:
        return None
    return (conn.address, port)


def _split(result: KeyingResult, ssrc: int) -> tuple[KeyingResult | None, KeyingResult | None]:
    """(outbound part, inbound part) of a re-key result; ``None`` for an empty part."""
    out = tuple(e for e in result.data_sa if e.ssrc == ssrc)
    inb = tuple(e for e in result.data_sa if e.ssrc != ssrc)
    reg = result.registration

    def part(entries: tuple[DataSaEntry, ...]) -> KeyingResult | None:
        return KeyingResult(reg, entries, rekey=True) if entries else None

    return part(out), part(inb)


class MikeyCallKeying(EndpointOwner):
    """MIKEY-keyed SRTP for SIP calls; see the module docstring.

    ``endpoint`` is this party's MIKEY endpoint (one per UA: its replay cache and CSB table are
    shared by every call); given an :class:`ExchangeConfig`, the binder makes its own endpoint
    with ``rng`` (the OS's randomness by default). ``local_media`` tells the UAS where its
    audio lives for a call (default: ``address`` port 9, a random SSRC, i.e. keys without
    media). ``key_mgmt_at_media``
    puts our offers' ``a=key-mgmt`` at media level instead of session level (tshark decodes only
    the session level). ``clock`` gives the MIKEY ``now`` (Unix seconds).
    """

    def __init__(
        self,
        endpoint: Endpoint | ExchangeConfig,
        *,
        registry: GsaRegistry | None = None,
        local_media: LocalMediaFactory | None = None,
        address: str = "127.0.0.1",
        key_mgmt_at_media: bool = False,
        clock: Clock = time.time,
        rng: Rng = os.urandom,
        max_pending: int = 1024,
    ) -> None:
        if not isinstance(endpoint, Endpoint):
            endpoint = Endpoint(endpoint, rng)
        self.endpoint = endpoint
        self.registry = registry if registry is not None else GsaRegistry()
        self.address = address
        self.key_mgmt_at_media = key_mgmt_at_media
        self.clock = clock
        self.rng = endpoint.rng
        self.max_pending = max_pending
        self._local_media = local_media or self._default_media
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self.calls: dict[str, CallKeys] = {}
        # bounded: a server that never drains events must not grow (oldest dropped first)
        self._events: deque[KeyingEvent] = deque(maxlen=4096)
        self._tasks: set[asyncio.Task[None]] = set()
        self.refused = 0

    # -- queries -----------------------------------------------------------------------------

    def keys(self, call: Call) -> CallKeys:
        """The keying state of a keyed call; raises :class:`KeyingError`."""
        found = self.calls.get(call.id or "")
        if found is None:
            raise KeyingError("the call is not keyed")
        return found

    def stream_source(self, call: Call) -> RegistryStreamSource:
        """The call's SRTP streams for :class:`srtp.media.SrtpMediaTransport`."""
        if call.id is None:
            raise KeyingError("the call has no dialog yet")
        return RegistryStreamSource(self.registry, call.id)

    def drain_events(self) -> list[KeyingEvent]:
        """Events since the last call, oldest first."""
        events = list(self._events)
        self._events.clear()
        return events

    @property
    def pending(self) -> int:
        """Offers sent whose answer has not arrived yet."""
        return len(self._pending)

    def new_ssrc(self) -> int:
        """A random non-zero SSRC (RFC 3550 §8)."""
        while True:
            ssrc = int.from_bytes(self.rng(4), "big")
            if ssrc:
                return ssrc

    async def _default_media(self, call: Call, offer: SessionDescription) -> LocalMedia:
        return LocalMedia(self.address, 9, self.new_ssrc())

    def local_aor(self) -> SipUri | None:
        """Our MIKEY identity as the UA's From AOR, when it is a sip:/sips: URI (else None)."""
        identity = self.config.identity
        return None if identity is None else _identity_uri(identity)

    def _initiator(self, peer: str | None) -> Initiator:
        """An initiator expecting ``peer`` as the responder, unless the config names one."""
        config = self.config
        if peer is not None and config.peer_identity is None:
            return Initiator(self.endpoint.with_config(replace(config, peer_identity=peer)))
        return Initiator(self.endpoint)

    # -- UAC ---------------------------------------------------------------------------------

    def offer(
        self,
        media: LocalMedia,
        *,
        session_id: int | None = None,
        target: str | SipUri | None = None,
    ) -> SessionDescription:
        """An audio offer keyed by a new I_MESSAGE: our SSRC, and 0 for the answerer's stream.

        ``target`` (the Request-URI the offer will be sent to) names the responder the initiator
        expects, as its AOR, when ``config.peer_identity`` does not. Raises :class:`KeyingError`
        when no I_MESSAGE can be built (e.g. no PSK or peer certificate for that identity).
        """
        return self._offer(media, session_id, target)[0]

    def _offer(
        self, media: LocalMedia, session_id: int | None, target: str | SipUri | None
    ) -> tuple[SessionDescription, str]:
        """The offer and its key-mgmt data (the key of its pending initiator)."""
        streams = (StreamSpec(media.ssrc), StreamSpec(0))
        initiator = self._initiator(_aor(target) if target is not None else None)
        try:
            attr = KeyMgmtAttr.from_message(KMPID, initiator.start(self.clock(), streams))
        except (MikeyError, SdpError) as exc:
            raise KeyingError(f"offer not built: {exc}", detail=_sentence(exc)) from None
        data = attr.data
        sid = session_id if session_id is not None else int.from_bytes(self.rng(4), "big")
        self._remember(data, _Pending(initiator, media, None))
        offer = build_audio_offer(
            media.address,
            media.port,
            session_id=sid,
            key_mgmt=[attr],
            key_mgmt_at_media=self.key_mgmt_at_media,
        )
        return offer, data

    async def invite(
        self,
        ua: UserAgent,
        target: str | SipUri,
        media: LocalMedia | None = None,
        *,
        proxy: Address | None = None,
    ) -> Call:
        """Place a MIKEY-keyed call; returns it confirmed and keyed, or raises ``CallError``.

        The responder must be the AOR of ``target`` (or ``config.peer_identity``); raises
        :class:`KeyingError` when no offer can be built for it.
        """
        local = media or LocalMedia(self.address, 9, self.new_ssrc())
        offer, data = self._offer(local, None, target)
        try:
            return await ua.invite(target, offer, proxy=proxy)
        finally:
            # a call that failed before its answer leaves no initiator behind
            self._forget_pending(data)

    async def rekey(self, call: Call) -> CallKeys:
        """Re-key a confirmed call with a re-INVITE in the same CSB (RFC 3830 §4.5).

        The re-key expects the identity that keyed the call as its peer.
        """
        keys = self.keys(call)
        gsa = self.registry.get(keys.key)
        roc = gsa.outbound[keys.local.ssrc].roc if keys.local.ssrc in gsa.outbound else 0
        streams = (StreamSpec(keys.local.ssrc, roc), StreamSpec(keys.remote_ssrc))
        owner = _peer_identity(keys.registration)
        endpoint = self.endpoint
        if owner is not None:
            endpoint = endpoint.with_config(replace(self.config, peer_identity=owner))
        initiator = Initiator(endpoint)
        try:
            attr = KeyMgmtAttr.from_message(
                KMPID,
                initiator.start(self.clock(), streams, rekey_of=gsa.rekey_sa or gsa.registration),
            )
        except (MikeyError, SdpError) as exc:
            raise KeyingError(f"re-key offer not built: {exc}", detail=_sentence(exc)) from None
        data = attr.data
        assert call.local_sdp is not None
        previous = call.local_sdp
        origin = next((ln.value.split() for ln in previous.session if ln.type == "o"), [])
        version = int(origin[2]) + 1 if len(origin) > 2 and origin[2].isdigit() else 1
        sid = int(origin[1]) if len(origin) > 1 and origin[1].isdigit() else 1
        offer = build_audio_offer(
            keys.local.address,
            keys.local.port,
            session_id=sid,
            session_version=version,
            key_mgmt=[attr],
            key_mgmt_at_media=self.key_mgmt_at_media,
        )
        self._remember(data, _Pending(initiator, keys.local, keys.key))
        try:
            await call.reinvite(offer)
        finally:
            self._forget_pending(data)
        return keys

    def _remember(self, data: str, pending: _Pending) -> None:
        self._pending[data] = pending
        while len(self._pending) > self.max_pending:
            _, old = self._pending.popitem(last=False)
            old.initiator.abort()

    def _forget_pending(self, data: str) -> None:
        pending = self._pending.pop(data, None)
        if pending is not None:
            pending.initiator.abort()

    def _forget_offer(self, offer: SessionDescription | None) -> None:
        if offer is None or not self._pending:
            return
        for index in range(len(offer.media)):
            for attr in _mikey_attrs(offer, index):
                self._forget_pending(attr.data)

    async def on_answer(self, call: Call, answer: SessionDescription) -> None:
        """UAC: verify the answer's MIKEY response and key the call, or raise KeyingError."""
        offer = call.local_sdp
        index = accepted_media_index(answer)
        sent = _mikey_attrs(offer, index) if offer is not None and index is not None else []
        pending = None
        for attr in sent:
            pending = self._pending.pop(attr.data, None)
            if pending is not None:
                break
        if pending is None:
            if call.id in self.calls and not sent:
                return  # a re-INVITE without key-mgmt keeps the keys
            raise KeyingError("no MIKEY offer is pending for this answer")
        try:
            self._finish(call, answer, index, pending)
        except (MikeyError, SrtpError, SdpError) as exc:
            pending.initiator.abort()
            self._events.append(CallKeyingFailed(call.call_id, 0, f"MIKEY: {exc}", _sentence(exc)))
            raise KeyingError(f"answer refused: {exc}", detail=_sentence(exc)) from exc
        except BaseException:
            pending.initiator.abort()
            raise

    def _finish(
        self, call: Call, answer: SessionDescription, index: int | None, pending: _Pending
    ) -> None:
        if index is None or answer.media[index].proto not in SECURE_PROTOS:
            raise KeyingError("the answer accepted no secure audio stream")
        key = call.id
        if key is None:
            raise KeyingError("the answer created no dialog")
        got = _mikey_attrs(answer, index)
        now = self.clock()
        initiator = pending.initiator
        if initiator.expects_response:
            if len(got) != 1:
                raise KeyingError("the answer carries no MIKEY response")
            outcome = initiator.finish(got[0].message, now)
        else:
            if got:  # see module docstring: no response in this mode, so none may come
                raise KeyingError("unexpected MIKEY data in the answer")
            outcome = initiator.finish(None, now)
        if not isinstance(outcome, ExchangeCompleted):
            raise outcome.error
        result = outcome.result
        local = pending.local
        remote = [e.ssrc for e in result.data_sa if e.ssrc != local.ssrc]
        if pending.rekey_of is not None:
            self.registry.rekey(pending.rekey_of, result, now, outbound_ssrcs={local.ssrc})
            keys = self.calls[pending.rekey_of]
            keys.rekeys += 1
            keys.registration = result.registration
            self._schedule_expire()
            self._events.append(CallRekeyed(keys.key, result.registration.csb_id))
            return
        self.registry.establish(key, result, now, outbound_ssrcs={local.ssrc})
        self.calls[key] = CallKeys(
            key=key,
            role=Role.INITIATOR,
            mode=result.registration.mode,
            local=local,
            remote_ssrc=remote[0] if remote else 0,
            remote_media=_remote_media(answer, index),
            registration=result.registration,
        )
        self._events.append(
            CallKeyed(key, result.registration.csb_id, result.registration.mode, Role.INITIATOR)
        )

    # -- UAS ---------------------------------------------------------------------------------

    async def on_offer(self, call: Call, offer: SessionDescription) -> SessionDescription:
        """UAS: key the call from the offer's I_MESSAGE and answer with the R_MESSAGE."""
        existing = self.calls.get(call.id or "")
        index = _offered_audio(offer)
        if index is None:
            raise self._refuse(call, 488, "no secure audio stream offered")
        try:
            # the one a=key-mgmt codec (sdp.keymgmt) decodes the data as it parses it
            attr = choose_key_mgmt(offer, index, (KMPID,))
        except SdpNegotiationError:
            raise self._refuse(call, 488, "no MIKEY key management offered") from None
        except SdpError:
            raise self._refuse(call, 488, "MIKEY: malformed key-mgmt data") from None
        if attr is None:
            if existing is not None:  # re-INVITE without key-mgmt keeps the keys
                return self._answer(offer, existing.local, None)
            raise self._refuse(call, 488, "no MIKEY key management offered")
        data = attr.message
        local = existing.local if existing is not None else await self._local_media(call, offer)
        key = call.id
        if call.ended or key is None:
            # cancelled while we waited: the UA discards this answer; nothing gets keyed
            return self._answer(offer, local, None)
        responder = Responder(self.endpoint)
        reply = responder.respond(
            data,
            self.clock(),
            local_ssrcs=[local.ssrc],
            expected_csb=existing.registration.csb_id if existing else None,
            # RFC 4567 §5, RFC 3830 §4.3: a new call is keyed by the AOR of the INVITE's From (the
            # signalled initiator); a re-key only by the identity that keyed the call (§4.5)
            expected_initiator=(
                _peer_identity(existing.registration)
                if existing is not None
                else call.invite.from_.uri.aor()
            ),
        )
        if not isinstance(reply, ExchangeCompleted):
            body = None
            if reply.answer is not None:
                body = _error_sdp(offer, index, reply.answer, self.address).encode()
            warning = f"MIKEY: {_error_name(reply.error)}"
            if reply.error.error_no == ErrorNo.INVALID_ID:
                # fixed phrases only: the exception's text may quote what the peer sent
                warning = REKEY_IDENTITY_WARNING if existing is not None else IDENTITY_WARNING
            raise self._refuse(
                call, status_for(reply.error), warning, body, detail=_sentence(reply.error)
            )
        # The result is staged: its CSB is recorded only once the call's keys are installed.
        result = reply.result
        try:
            answer = self._answer(offer, local, reply.answer)
        except SdpError as exc:
            self.endpoint.discard(result)
            raise self._refuse(call, exc_status(exc), f"SDP: {exc}") from None
        now = self.clock()
        try:
            if existing is not None:
                self._rekey_uas(call, existing, result, now)
            else:
                self.registry.establish(key, result, now, outbound_ssrcs={local.ssrc})
        except SrtpError as exc:
            self.endpoint.discard(result)
            raise self._refuse(call, 488, f"MIKEY: SRTP {type(exc).__name__}") from None
        self.endpoint.commit(result)
        if existing is None:
            remote = [e.ssrc for e in result.data_sa if e.ssrc != local.ssrc]
            self.calls[key] = CallKeys(
                key=key,
                role=Role.RESPONDER,
                mode=result.registration.mode,
                local=local,
                remote_ssrc=remote[0] if remote else 0,
                remote_media=_remote_media(offer, index),
                registration=result.registration,
            )
            self._events.append(
                CallKeyed(key, result.registration.csb_id, result.registration.mode, Role.RESPONDER)
            )
        return answer

    def _rekey_uas(self, call: Call, keys: CallKeys, result: KeyingResult, now: float) -> None:
        outbound, inbound = _split(result, keys.local.ssrc)
        if inbound is not None:
            self.registry.rekey(keys.key, inbound, now, outbound_ssrcs={keys.local.ssrc})
        keys.rekeys += 1
        keys.registration = result.registration
        self._events.append(CallRekeyed(keys.key, result.registration.csb_id))
        if outbound is None:
            self._schedule_expire()
            return
        if inbound is None:
            self.registry.rekey(keys.key, outbound, now, outbound_ssrcs={keys.local.ssrc})
            self._schedule_expire()
            return
        self._spawn(self._switch_outbound_after_ack(call, keys.key, outbound))

    async def _switch_outbound_after_ack(
        self, call: Call, key: str, outbound: KeyingResult
    ) -> None:
        await asyncio.sleep(0)  # let the UA send the 2xx first
        await call.wait_confirmed()
        if call.ended or key not in self.registry:
            outbound.wipe()
            return
        try:
            self.registry.rekey(key, outbound, self.clock(), outbound_ssrcs=set())
        except SrtpError:
            log.warning("outbound re-key of a SIP call failed; ending the call")
            with contextlib.suppress(SipError):
                await call.bye()
            return
        self._schedule_expire()

    def _answer(
        self, offer: SessionDescription, local: LocalMedia, response: bytes | None
    ) -> SessionDescription:
        return build_audio_answer(
            offer,
            local.address,
            local.port,
            session_id=local.ssrc,
            key_mgmt=KeyMgmtAttr.from_message(KMPID, response) if response is not None else None,
        )

    def _refuse(
        self,
        call: Call,
        status: int,
        warning: str,
        body: bytes | None = None,
        *,
        detail: str | None = None,
    ) -> Rejected:
        self.refused += 1
        self._events.append(CallKeyingFailed(call.call_id, status, warning, detail))
        return Rejected(status, warning, body)

    # -- teardown ----------------------------------------------------------------------------

    async def on_terminated(self, call: Call, reason: TerminationReason) -> None:
        """Every call ending: abort its pending initiator, tear its GSA down."""
        self._forget_offer(call.local_sdp if call.is_uac else None)
        key = call.id
        if key is None:
            return
        keys = self.calls.pop(key, None)
        if keys is not None and keys.role is Role.RESPONDER:
            # the CSB ends with the call: only re-keys of a live call may name it (RFC 3830 §4.5)
            self.endpoint.forget(keys.registration.csb_id)
        event = self.registry.teardown(key, reason, self.clock())
        if event is not None:
            self._events.append(CallKeysTornDown(key, event.reason))

    async def close(self) -> None:
        """Abort pending offers and tear down every GSA this binder established."""
        for pending in self._pending.values():
            pending.initiator.abort()
        self._pending.clear()
        for key in list(self.calls):
            self.calls.pop(key, None)
            self.registry.teardown(key, GsaReason.SHUTDOWN, self.clock())
        for task in list(self._tasks):
            task.cancel()

    # -- helpers -----------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_expire(self) -> None:
        """End the re-key overlap when it is due (GsaRegistry.expire on our clock)."""
        delay = self.registry.config.rekey_overlap
        loop = asyncio.get_running_loop()
        loop.call_later(delay + 0.01, lambda: self.registry.expire(self.clock()))


def exc_status(exc: SdpError) -> int:
    status = getattr(exc, "status_code", 488)
    return status if status in (488, 606) else 488


def _error_sdp(
    offer: SessionDescription, index: int, data: bytes, address: str
) -> SessionDescription:
    """A 488/606 body: every stream rejected, the MIKEY error message at the offer's level."""
    head = build_audio_offer(address, 9, session_id=0).session
    media = tuple(
        MediaDescription.build(m.media, 0, m.proto, list(m.formats[:1]) or ["0"])
        for m in offer.media
    )
    sdp = SessionDescription(head, media)
    return sdp.with_key_mgmt(offer.key_mgmt_level(index), [KeyMgmtAttr.from_message(KMPID, data)])
