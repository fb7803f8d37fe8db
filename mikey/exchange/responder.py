"""The responder role: process an I_MESSAGE and build the R_MESSAGE or the error message.

:meth:`Responder.respond` runs the receive pipeline, cheap checks first and nothing
unauthenticated entering shared state::

    decode      -> the bytes parse (strict unless configured), as an I_MESSAGE of our mode
    composition -> PRF, CS map, T and RAND present, the CSB (a rekey of a known one?)
    window      -> T within the clock skew (RFC 3830 §5.4), before any cryptography
    claims      -> IDr is ours; IDi agrees with what the signalling expects
    authenticate-> by the mode's authentication: MAC (PSK, DHHMAC) or SIGN (PK, DH, RSA-R),
                   opening the keys the I_MESSAGE transports (PSK KEMAC, PK envelope);
                   every failure is the same AUTH_FAILURE (no oracle)
    identity    -> the authenticated initiator: IDi bound to the certificate or to the PSK;
                   a rekey's owner (RFC 3830 §4.5) and a newer T
    replay      -> only now the replay cache remembers the message
    policy      -> every SP acceptable to local policy
    keys        -> by the mode's key transport: V only (PSK, PK), a DH answer, an RSA-R KEMAC;
                   then the Data SA (RFC 3830 §4.1.3)

Each stage returns what it found; a refusal at any stage raises, and :meth:`respond` turns it
into :class:`ExchangeRefused` with the ERR message (RFC 3830 §5.1.2) where one may be sent. The
result is *staged*: the CSB is recorded only by :meth:`Endpoint.commit`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509

from .. import crypto, dh
from .._accel import wipe
from .._frozen import fast_init
from ..codec import (
    Chash,
    DhPayload,
    Err,
    Header,
    Kemac,
    KeyData,
    KeySpi,
    Leniency,
    Message,
    Payload,
    Pke,
    Rand,
    SecurityPolicy,
    SrtpIdEntry,
    Timestamp,
    Verification,
)
from ..errors import (
    AuthenticationError,
    CertificateError,
    DecodeError,
    IdentityError,
    MikeyError,
    PolicyError,
    ProtocolError,
    TimestampError,
)
from ..identity import bind_certificate, certificate_uris, matches_any
from ..keying import KeyingResult, RegistrationSa, Role, SrtpPolicy
from ..pki import Credentials
from ..prf import TransportKeys, derive_transport_keys
from ..registry import (
    MAC_LENGTH,
    CsIdMapType,
    DataType,
    EncrAlg,
    ErrorNo,
    KeyDataType,
    MacAlg,
    PayloadType,
    PkeCache,
    PrfFunc,
)
from ..replay import make_timestamp
from .auth import (
    cert_payloads,
    encode_maced,
    encode_signed,
    peer_certificate,
    rsa_public,
    verify_mac_field,
    verify_signed,
)
from .config import ANY_INITIATOR, AnyInitiator, ExchangeCompleted, ExchangeRefused, Rng
from .endpoint import Endpoint
from .keys import (
    derive_data_sa,
    kemac_mac_alone,
    kemac_plaintext,
    open_kemac,
    tgk_from,
    wipe_keys,
)
from .machine import RESPONDER_TABLE, Input, Machine, State
from .memo import checked_policy, id_payload, own_cert_hash, policy_of_sp
from .modes import MODE_OF_INIT, MODES, Auth, ModeSpec, Transport
from .profiles import filetime_as_ntp
from .wire import (
    ENV_KEY_LENGTH,
    RAND_LENGTH,
    check_leniencies,
    digest,
    identities,
    msg_prf,
    null_kemac,
    parse_initiator_message,
    same_party,
)

__all__ = ["Responder"]

_PRF_FUNCS: dict[int, PrfFunc] = {int(f): f for f in PrfFunc}


@fast_init
@dataclass(frozen=True, slots=True)
class _Authenticated:
    """What authentication established: who, with which certificate, and the keys it opened."""

    initiator_id: str | None
    keys: tuple[KeyData, ...] = ()
    cert: x509.Certificate | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class _Inbound:
    """What the pipeline found in the I_MESSAGE before authentication (the stages' input)."""

    spec: ModeSpec
    msg: Message
    raw: bytes
    claimed: str | None  # IDi, if any
    signalled: str | None  # who the signalling says the initiator is, if it says
    rand: bytes
    prf: PrfFunc
    t: Timestamp
    now: float


#: (answer, T_r, TGK buffer, key data) of a key transport's answer step
_Answered = tuple[bytes | None, Timestamp | None, bytearray | None, tuple[KeyData, ...]]


class _RespCtx:
    """What one ``respond`` call holds that must be wiped on every path, and what the ERR
    message needs (the parsed message, T_i, and the transport keys once authenticated)."""

    __slots__ = ("authenticated", "keys", "msg", "t_i", "transport", "v_alg")

    def __init__(self) -> None:
        self.msg: Message | None = None
        self.keys: tuple[KeyData, ...] = ()
        self.t_i = b""
        self.transport: TransportKeys | None = None
        self.v_alg = MacAlg.HMAC_SHA_1_160
        self.authenticated = False

    def keep(self, transport: TransportKeys, v_alg: MacAlg) -> None:
        """Hold the transport keys (for V and an authenticated ERR) until the call ends."""
        self.transport = transport
        self.v_alg = v_alg

    def wipe(self) -> None:
        if self.transport is not None:
            self.transport.wipe()
            self.transport = None
        wipe_keys(self.keys)


class Responder(Machine):
    """The party that answers (the SIP answerer / RTSP key receiver)."""

    _table = RESPONDER_TABLE

    def __init__(self, endpoint: Endpoint, rng: Rng | None = None) -> None:
        if not isinstance(endpoint, Endpoint):
            raise TypeError("Responder needs an Endpoint (it owns the replay cache and CSBs)")
        self.state = State.IDLE
        self.endpoint = endpoint
        self.config = endpoint.config
        self.rng: Rng = rng if rng is not None else endpoint.rng
        self.result: KeyingResult | None = None

    def respond(
        self,
        data: bytes,
        now: float,
        *,
        local_ssrcs: Sequence[int] = (),
        expected_csb: int | None = None,
        expected_initiator: str | AnyInitiator | None = ANY_INITIATOR,
    ) -> ExchangeCompleted | ExchangeRefused:
        """Process an I_MESSAGE; return the (staged) keys and the R_MESSAGE, or the refusal.

        ``local_ssrcs`` fill the crypto sessions whose SSRC the initiator left at 0 (in order).
        ``expected_csb`` restricts the message to a rekey of that CSB (RFC 3830 §4.5).
        ``expected_initiator`` is who the signalling says the initiator is (a SIP From, the
        owner of the session being rekeyed): IDi must be it, without IDi the PSK is looked up by
        it and a certificate must carry it; ``ANY_INITIATOR`` accepts any authenticated party.
        """
        nxt = self._advance(Input.RESPOND)
        ctx = _RespCtx()
        try:
            result, answer = self._respond(
                bytes(data), now, tuple(local_ssrcs), expected_csb, expected_initiator, ctx
            )
        except MikeyError as exc:
            self.state = State.FAILED
            answer = self._error_message(exc, ctx, now)
            ctx.wipe()
            return ExchangeRefused(answer, exc)
        except BaseException:
            self.state = State.FAILED
            ctx.wipe()
            raise
        ctx.wipe()
        self.state = nxt
        self.result = result
        return ExchangeCompleted(answer, result)

    # -- the pipeline -----------------------------------------------------------------------

    def _respond(  # noqa: PLR0917 (one call site)
        self,
        raw: bytes,
        now: float,
        local_ssrcs: tuple[int, ...],
        expected_csb: int | None,
        expected: str | AnyInitiator | None,
        ctx: _RespCtx,
    ) -> tuple[KeyingResult, bytes | None]:
        cfg = self.config
        endpoint = self.endpoint
        msg, spec, prf = self._decode(raw, ctx)
        known = endpoint.csbs.get(msg.csb_id)
        if expected_csb is not None and msg.csb_id != expected_csb:
            raise ProtocolError(
                "message for another crypto session bundle", error_no=ErrorNo.UNSPECIFIED
            )
        check_leniencies(msg, cfg, rekey=known is not None)
        t, rand = self._composition(msg, known)
        ctx.t_i = t.value
        endpoint.replay.check_window(t, now)  # cheap, before any cryptography (RFC 3830 §5.4)
        claimed = self._claims(msg)
        signalled = expected if isinstance(expected, str) else None
        inbound = _Inbound(spec, msg, raw, claimed, signalled, rand, prf, t, now)
        auth = _AUTHENTICATE[spec.auth](self, inbound, ctx)
        self._check_owner(auth.initiator_id, expected, signalled, known, t)
        # Authenticated: now the replay cache may remember it.
        endpoint.replay.check(
            t, peer=auth.initiator_id or "", csb_id=msg.csb_id, digest=digest(raw), now=now
        )
        ctx.authenticated = True
        policies = self._policies(msg)
        cs_map = _fill_ssrcs(msg.header.srtp_entries, local_ssrcs)
        answer, t_r, tgk, keys = _ANSWER[spec.transport](self, inbound, ctx, auth, cs_map)
        if tgk is None:
            tgk = tgk_from(keys)  # a copy of the transported TGK: wiped below
        try:
            data_sa = derive_data_sa(
                tgk=tgk,
                keys=keys,
                csb_id=msg.csb_id,
                rand=rand,
                prf=prf,
                cs_map=cs_map,
                policies=policies,
                minisip_compat=cfg.minisip_compat,
            )
        finally:
            wipe(tgk)
        reg = RegistrationSa(
            mode=spec.mode,
            role=Role.RESPONDER,
            csb_id=msg.csb_id,
            prf=prf,
            rand=rand,
            t_initiator=t.value,
            t_responder=t_r.value if answer is not None and t_r is not None else None,
            initiator_id=auth.initiator_id,
            responder_id=cfg.identity,
        )
        return KeyingResult(reg, data_sa, rekey=known is not None), answer

    def _decode(self, raw: bytes, ctx: _RespCtx) -> tuple[Message, ModeSpec, PrfFunc]:
        """decode: an I_MESSAGE of our mode, a PRF we run, an SRTP-ID map. Once it parses, the
        message is what an ERR answer refers to (ctx.msg), whatever is refused next."""
        cfg = self.config
        if len(raw) < 10:
            raise DecodeError("message too short for a MIKEY header", 0)
        msg = ctx.msg = parse_initiator_message(raw, cfg)
        mode = MODE_OF_INIT.get(msg.data_type)  # type: ignore[call-overload]
        if mode is None:
            raise ProtocolError(
                f"not an initiator message: {msg.data_type}"
                if isinstance(msg.data_type, DataType)
                else "unknown data type",
                error_no=ErrorNo.INVALID_DT,
            )
        if mode != cfg.mode:
            raise ProtocolError(
                f"{mode.value} exchange not configured here",
                error_no=MODES[mode].not_configured,
            )
        prf = _PRF_FUNCS.get(msg.header.prf)
        if prf is None or prf not in cfg.accepted_prfs:
            raise ProtocolError("PRF not supported", error_no=ErrorNo.INVALID_PRF)
        if msg.header.cs_map_type != CsIdMapType.SRTP_ID or not msg.header.srtp_entries:
            raise ProtocolError("only SRTP-ID CS maps are supported", error_no=ErrorNo.UNSPECIFIED)
        return msg, MODES[mode], prf

    def _composition(
        self, msg: Message, known: tuple[str | None, bytes, int] | None
    ) -> tuple[Timestamp, bytes]:
        """composition: T, and RAND (a CSB update may omit it and keep the initial one)."""
        cfg = self.config
        t = msg.find(Timestamp)
        if t is None:
            raise ProtocolError("I_MESSAGE without T", error_no=ErrorNo.INVALID_TS)
        if cfg.filetime_timestamps and Leniency.NON_NTP_TIMESTAMP in msg.leniencies:
            t = filetime_as_ntp(t)  # Genetec/Hanwha (docs/WIRE.md §Windows FILETIME)
        rand_p = msg.find(Rand)
        if rand_p is not None:
            rand = rand_p.value
            if len(rand) < RAND_LENGTH and not cfg.allow_null_kemac:
                raise ProtocolError("RAND shorter than 128 bits", error_no=ErrorNo.UNSPECIFIED)
        elif known is not None:
            rand = known[1]  # CSB update without RAND keeps the initial one (RFC 3830 §4.5)
        elif (
            Leniency.PSK_WITHOUT_RAND in cfg.accepted_leniencies
            and msg.data_type == DataType.PSK_INIT
        ):
            rand = b""
        else:
            raise ProtocolError("I_MESSAGE without RAND", error_no=ErrorNo.UNSPECIFIED)
        return t, rand

    def _claims(self, msg: Message) -> str | None:
        """claims: IDr, if given, must be this responder in every mode; returns IDi."""
        claimed, says_responder = identities(msg)
        if says_responder is not None:
            own = self._own_identities()
            if own and not matches_any(says_responder, own):
                raise IdentityError(f"IDr {says_responder} names another responder")
        return claimed

    def _own_identities(self) -> tuple[str, ...]:
        """Who this responder is: its configured identity, else its certificate's SAN URIs."""
        cfg = self.config
        if cfg.identity:
            return (cfg.identity,)
        if cfg.credentials is not None:
            return certificate_uris(cfg.credentials.certificate)
        return ()

    def _authenticate_mac(self, inbound: _Inbound, ctx: _RespCtx) -> _Authenticated:
        """MAC (PSK, DHHMAC): the initiator's PSK — by IDi, else by the identity the signalling
        names — keys the MAC over the message; PSK also opens the KEMAC's key data."""
        spec, msg, raw, claimed = inbound.spec, inbound.msg, inbound.raw, inbound.claimed
        rand, prf, t = inbound.rand, inbound.prf, inbound.t
        cfg = self.config
        signalled = inbound.signalled
        # Without IDi the signalling names the initiator: its PSK is the one looked up.
        initiator_id = claimed if claimed is not None else signalled
        kem = msg.payloads[-1] if msg.payloads else None
        psk = cfg.psk.lookup(initiator_id) if cfg.psk is not None else None
        try:
            if (
                not psk
                and spec.transport is Transport.PSK_KEMAC
                and cfg.allow_null_kemac
                and null_kemac(msg)
            ):
                # NULL/NULL KEMAC (opt-in, RTSPS peers): no key protects it, so none is needed.
                psk = bytearray(b"\0")
            if not psk:
                who = f"the initiator {initiator_id}" if initiator_id else "an unnamed initiator"
                raise IdentityError(f"no pre-shared key for {who}")
            if spec.transport is Transport.PSK_KEMAC:
                if not isinstance(kem, Kemac):
                    raise ProtocolError(
                        "PSK I_MESSAGE must end with KEMAC", error_no=ErrorNo.UNSPECIFIED
                    )
                keys, _, tk = open_kemac(
                    kem,
                    psk,
                    csb_id=msg.csb_id,
                    rand=rand,
                    ts_value=t.value,
                    prf=prf,
                    cfg=cfg,
                    first=PayloadType.KEY_DATA,
                    mac_scope_kemac_only=False,
                    msg=msg,
                    raw=raw,
                )
                ctx.keep(tk, MacAlg(kem.mac_alg))
                ctx.keys = keys
                return _Authenticated(initiator_id, keys)
            # DHHMAC (RFC 4650): a keyless KEMAC whose MAC covers the message
            if (
                not isinstance(kem, Kemac)
                or kem.mac_alg == MacAlg.NULL
                or not isinstance(kem.mac_alg, MacAlg)
            ):
                raise AuthenticationError()
            tk = derive_transport_keys(
                psk, msg.csb_id, rand, prf, EncrAlg.NULL, kem.mac_alg,
                minisip_compat=cfg.minisip_compat,
            )  # fmt: skip
            ctx.keep(tk, kem.mac_alg)
            verify_mac_field(kem.mac_alg, tk.auth_key, raw, msg, kem.mac)
            return _Authenticated(initiator_id)
        finally:
            if isinstance(psk, bytearray):  # the store hands out a copy for us to wipe
                wipe(psk)

    def _authenticate_signed(self, inbound: _Inbound, ctx: _RespCtx) -> _Authenticated:
        """SIGN (PK, DH, RSA-R): the initiator's validated (or pinned) certificate signs the
        message; PK's envelope opens the KEMAC. IDi — or the signalled initiator — must be a
        SAN URI of the certificate (RFC 3830 §4.3)."""
        msg, raw, claimed = inbound.msg, inbound.raw, inbound.claimed
        cfg = self.config
        cert = peer_certificate(msg, cfg.trust, cfg.peer_certificate, inbound.now, "initiator")
        verify_signed(raw, msg, cert, cfg.sign_hash)
        keys: tuple[KeyData, ...] = ()
        kem_id: str | None = None
        if inbound.spec.transport is Transport.ENVELOPE:
            keys, kem_id = self._open_envelope(msg, raw, inbound.t, inbound.rand, ctx)
            if kem_id is not None and claimed is not None and kem_id != claimed:
                raise AuthenticationError()
        initiator_id = bind_certificate(
            cert,
            claimed if claimed is not None else kem_id,
            inbound.signalled,
            cfg.cert_identities,
            field="IDi",
        )
        return _Authenticated(initiator_id, keys, cert)

    def _open_envelope(
        self, msg: Message, raw: bytes, t: Timestamp, rand: bytes, ctx: _RespCtx
    ) -> tuple[tuple[KeyData, ...], str | None]:
        """PK (RFC 3830 §3.2): our private key opens PKE; its envelope key opens the KEMAC."""
        cfg = self.config
        creds = self._own_creds()
        kem = msg.find(Kemac)
        pke = msg.find(Pke)
        if kem is None or pke is None:
            raise ProtocolError("PK I_MESSAGE needs KEMAC and PKE", error_no=ErrorNo.UNSPECIFIED)
        found = msg.find(Chash)
        if found is not None:
            mine = own_cert_hash(found.hash_func, creds.chain_der()[0])
            if mine != found.digest:
                raise CertificateError("envelope encrypted to another certificate")
        env_key = crypto.rsa_decrypt_envelope(creds.private_key, pke.data, None, self.rng)
        try:
            keys, ident, tk = open_kemac(
                kem,
                env_key,
                csb_id=msg.csb_id,
                rand=rand,
                ts_value=t.value,
                prf=msg_prf(msg),
                cfg=cfg,
                first=PayloadType.ID,
                mac_scope_kemac_only=True,
                msg=msg,
                raw=raw,
            )
        finally:
            wipe(env_key)
        # its auth_key (made for the KEMAC's MAC algorithm) also serves V
        ctx.keep(tk, MacAlg(kem.mac_alg))
        ctx.keys = keys
        return keys, ident

    def _check_owner(
        self,
        initiator_id: str | None,
        expected: str | AnyInitiator | None,
        signalled: str | None,
        known: tuple[str | None, bytes, int] | None,
        t: Timestamp,
    ) -> None:
        """identity: the authenticated initiator is the one expected, and a known CSB is
        rekeyed by its owner with a newer T (RFC 3830 §4.5, RFC 4046 §4.2)."""
        if expected is not ANY_INITIATOR and not same_party(expected, initiator_id):
            if known is not None or signalled is None:
                raise IdentityError("rekey of a crypto session bundle by another identity")
            raise IdentityError(f"IDi {initiator_id} is not the signalled initiator {signalled}")
        if known is not None:
            owner, _, last_t = known
            if not same_party(owner, initiator_id):
                raise IdentityError("rekey of a crypto session bundle by another identity")
            if int.from_bytes(t.value, "big") <= last_t:
                raise TimestampError("rekey not newer than the last message for this CSB")

    def _policies(self, msg: Message) -> dict[int, SrtpPolicy]:
        """policy: the SRTP policy of every crypto session, each acceptable here."""
        cfg = self.config
        sps = {sp.policy_no: sp for sp in msg.find_all(SecurityPolicy)}
        lenient_tag = Leniency.SRTP_TAG_IN_AUTH_KEY_LEN in msg.leniencies
        policies: dict[int, SrtpPolicy] = {}
        for cs in msg.header.srtp_entries:
            if cs.policy_no not in policies:
                sp = sps.get(cs.policy_no)
                if sp is not None:
                    pol = policy_of_sp(sp, lenient_tag)
                elif not sps:
                    pol = SrtpPolicy()  # RFC 3830 §6.10: no SP -> the protocol's defaults
                else:
                    raise PolicyError(
                        f"no SP payload with policy no {cs.policy_no}",
                        error_no=ErrorNo.INVALID_SP,
                    )
                checked_policy(cfg.acceptable, pol)
                policies[cs.policy_no] = pol
        return policies

    # -- the answers of the key transports --------------------------------------------------

    def _answer_v(
        self, inbound: _Inbound, ctx: _RespCtx, auth: _Authenticated, cs_map: list[SrtpIdEntry]
    ) -> _Answered:
        """PSK, PK: the keys came with the I_MESSAGE; answer only when V is asked for
        (RFC 3830 §3.1, §3.2)."""
        spec, msg, now = inbound.spec, inbound.msg, inbound.now
        if not msg.header.v:
            return None, None, None, auth.keys
        t_r, r_hdr, ids = self._answer_head(spec, msg, cs_map, now)
        return self._v_message(r_hdr, [t_r, *ids], ctx), t_r, None, auth.keys

    def _answer_dh(
        self, inbound: _Inbound, ctx: _RespCtx, auth: _Authenticated, cs_map: list[SrtpIdEntry]
    ) -> _Answered:
        """DH-signed / DHHMAC: our DH value, the shared TGK and the signed or MACed answer."""
        spec, msg, now = inbound.spec, inbound.msg, inbound.now
        cfg = self.config
        dhi = msg.find(DhPayload)
        if dhi is None or len(msg.find_all(DhPayload)) != 1:
            raise ProtocolError("I_MESSAGE needs one DH payload", error_no=ErrorNo.INVALID_DH)
        if dhi.group not in cfg.accepted_dh_groups:
            raise ProtocolError("DH group not supported", error_no=ErrorNo.INVALID_DH)
        t_r, r_hdr, ids = self._answer_head(spec, msg, cs_map, now)
        y = dh.validate_peer_value(dhi.group, dhi.value)
        x = dh.generate_private(dhi.group, self.rng)
        dhr = DhPayload(dhi.group, dh.public_value(dhi.group, x))
        tgk = dh.shared_secret(dhi.group, x, y)
        del x
        try:
            if spec.auth is Auth.SIGN:
                creds = self._own_creds()
                answer = encode_signed(
                    r_hdr,
                    [t_r, *ids, *cert_payloads(creds), dhr, dhi],
                    creds,
                    sign_type=cfg.sign_type,
                    hash_alg=cfg.sign_hash,
                )
            else:
                assert ctx.transport is not None
                mac_alg = ctx.v_alg  # the I_MESSAGE's KEMAC MAC, checked when authenticating
                kemac = Kemac(EncrAlg.NULL, b"", mac_alg, bytes(MAC_LENGTH[mac_alg]))
                answer = encode_maced(
                    r_hdr, (t_r, *ids, dhr, dhi, kemac), mac_alg, ctx.transport.auth_key
                )
        except BaseException:
            wipe(tgk)
            raise
        return answer, t_r, tgk, ()

    def _answer_rsa_r(
        self, inbound: _Inbound, ctx: _RespCtx, auth: _Authenticated, cs_map: list[SrtpIdEntry]
    ) -> _Answered:
        """RSA-R (RFC 4738): a fresh TGK in a KEMAC under an envelope key for the initiator."""
        spec, msg, rand, prf, now = (
            inbound.spec,
            inbound.msg,
            inbound.rand,
            inbound.prf,
            inbound.now,
        )
        cfg = self.config
        assert auth.cert is not None
        creds = self._own_creds()
        t_r, r_hdr, ids = self._answer_head(spec, msg, cs_map, now)
        tgk = bytearray(self.rng(cfg.tgk_length))
        env_key = bytearray(self.rng(ENV_KEY_LENGTH))
        try:
            tk = derive_transport_keys(
                env_key, msg.csb_id, rand, prf, cfg.kemac_encr, cfg.kemac_mac
            )
            ctx.keep(tk, cfg.kemac_mac)
            kv = KeySpi(self.rng(cfg.mki_length)) if cfg.mki_length else None
            keys = (KeyData(KeyDataType.TGK, tgk, None, kv),)  # shares tgk: wiped with it
            plain = kemac_plaintext(cfg.identity, keys, cfg.kemac_encr)
            try:
                enc = crypto.encrypt_kemac(cfg.kemac_encr, tk, msg.csb_id, t_r.value, plain)
            finally:
                wipe(plain)
            kemac = kemac_mac_alone(cfg.kemac_encr, enc, cfg.kemac_mac, tk.auth_key)
            pke = Pke(
                PkeCache.NO_CACHE, crypto.rsa_encrypt_envelope(rsa_public(auth.cert), env_key)
            )
            extra = (cfg.identity or "").encode() + t_r.value  # SIGNr covers IDr || T_r
            answer = encode_signed(
                r_hdr,
                [t_r, *ids, *cert_payloads(creds), kemac, pke],
                creds,
                sign_type=cfg.sign_type,
                hash_alg=cfg.sign_hash,
                extra=extra,
            )
        except BaseException:
            wipe(tgk)
            raise
        finally:
            wipe(env_key)
        return answer, t_r, tgk, keys

    def _answer_head(
        self, spec: ModeSpec, msg: Message, cs_map: list[SrtpIdEntry], now: float
    ) -> tuple[Timestamp, Header, list[Payload]]:
        """T, header and our ID payload for the R_MESSAGE."""
        cfg = self.config
        t_r = make_timestamp(now, cfg.ts_type)
        r_hdr = Header(
            data_type=spec.resp_type,
            csb_id=msg.csb_id,
            cs_map=tuple(cs_map),
            v=False,
            prf=msg.header.prf,
        )
        ids: list[Payload] = (
            [id_payload(cfg.identity)] if cfg.identity and cfg.send_identities else []
        )
        return t_r, r_hdr, ids

    def _own_creds(self) -> Credentials:
        if self.config.credentials is None:
            raise CertificateError("this mode needs own credentials")
        return self.config.credentials

    def _v_message(self, hdr: Header, payloads: list[Payload], ctx: _RespCtx) -> bytes:
        assert ctx.transport is not None
        alg = ctx.v_alg  # the KEMAC's MAC algorithm: the auth_key was derived for it
        v = Verification(alg, bytes(MAC_LENGTH[alg]))
        # RFC 3830 §5.2: V covers the R_MESSAGE and the initiator's T
        return encode_maced(hdr, (*payloads, v), alg, ctx.transport.auth_key, ctx.t_i)

    def _error_message(self, exc: MikeyError, ctx: _RespCtx, now: float) -> bytes | None:
        """The ERR message (RFC 3830 §5.1.2), authenticated with V or SIGN when possible."""
        msg = ctx.msg
        if msg is None or isinstance(exc, DecodeError):
            return None  # nothing to bind an error message to
        mode = MODE_OF_INIT.get(msg.data_type)  # type: ignore[call-overload]
        spec = MODES[mode] if mode is not None else None
        # Echo the CS ID map only when it is one we can encode strictly; a reserved map type
        # (accepted by lenient parsing) must not leak into our own answer.
        known_map = isinstance(msg.header.cs_map_type, CsIdMapType) and not (
            msg.header.raw_map_info or msg.header.map_padding
        )
        hdr = Header(
            data_type=DataType.ERROR,
            csb_id=msg.csb_id,
            cs_map=msg.header.cs_map if known_map else (),
            cs_map_type=msg.header.cs_map_type if known_map else CsIdMapType.SRTP_ID,
            v=False,
            prf=msg.header.prf if isinstance(msg.header.prf, PrfFunc) else PrfFunc.MIKEY_1,
        )
        payloads: list[Payload] = [make_timestamp(now, self.config.ts_type), Err(exc.error_no)]
        try:
            # V where a transport auth key exists (every mode but DH-signed), else SIGN
            if (
                ctx.authenticated
                and ctx.transport is not None
                and ctx.t_i
                and spec is not None
                and spec.fixed_v_mac is None
            ):
                return self._v_message(hdr, payloads, ctx)
            if (
                ctx.authenticated
                and spec is not None
                and spec.responder_signs
                and self.config.credentials
            ):
                return encode_signed(
                    hdr,
                    payloads,
                    self.config.credentials,
                    sign_type=self.config.sign_type,
                    hash_alg=self.config.sign_hash,
                )
            return Message(hdr, tuple(payloads)).encode()
        except MikeyError:
            return None


def _fill_ssrcs(entries: Sequence[SrtpIdEntry], local_ssrcs: tuple[int, ...]) -> list[SrtpIdEntry]:
    """The CS map with our SSRCs in the crypto sessions the initiator left at 0 (in order)."""
    cs_map = list(entries)
    fill = list(local_ssrcs)
    for i, cs in enumerate(cs_map):
        if cs.ssrc == 0 and fill:
            cs_map[i] = SrtpIdEntry(cs.policy_no, fill.pop(0), cs.roc)
    return cs_map


_Authenticator = Callable[["Responder", _Inbound, _RespCtx], _Authenticated]
_Answer = Callable[["Responder", _Inbound, _RespCtx, _Authenticated, list[SrtpIdEntry]], _Answered]
#: the authentication of each kind (Auth) and the answer of each key transport (Transport)
_AUTHENTICATE: dict[Auth, _Authenticator] = {
    Auth.MAC: Responder._authenticate_mac,
    Auth.SIGN: Responder._authenticate_signed,
}
_ANSWER: dict[Transport, _Answer] = {
    Transport.PSK_KEMAC: Responder._answer_v,
    Transport.ENVELOPE: Responder._answer_v,
    Transport.DH: Responder._answer_dh,
    Transport.RSA_R: Responder._answer_rsa_r,
}
