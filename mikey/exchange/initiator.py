"""The initiator role: build the I_MESSAGE (``start``), then process the answer (``finish``).

Building dispatches on the mode's key transport (:data:`~mikey.exchange.modes.MODES`);
processing the answer runs, in order: decode -> composition (CSB, data type, T) ->
authentication (V, the DHHMAC MAC, or the responder's certificate and SIGN) -> identity (IDr is
the expected peer's, and in the signed modes the certificate's) -> replay cache -> CS map ->
keys (the DH secret, or the RSA-R KEMAC). Every buffer is wiped when the exchange fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .. import crypto, dh
from .._accel import wipe
from ..codec import (
    DhPayload,
    Err,
    Header,
    Kemac,
    KeyData,
    Message,
    Payload,
    Pke,
    Rand,
    SecurityPolicy,
    SrtpIdEntry,
    Timestamp,
    Verification,
    parse_message,
)
from ..errors import (
    AuthenticationError,
    CertificateError,
    IdentityError,
    MikeyError,
    PeerError,
    ProtocolError,
)
from ..identity import bind_certificate, same_identity
from ..keying import KeyingResult, Mode, RegistrationSa, Role, SrtpPolicy
from ..pki import Credentials, PskStore
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
from .config import ExchangeCompleted, ExchangeConfig, ExchangeRefused, Rng, StreamSpec
from .endpoint import Endpoint
from .keys import (
    derive_data_sa,
    kemac_mac_alone,
    kemac_plaintext,
    new_key_data,
    open_kemac,
    wipe_keys,
)
from .machine import INITIATOR_TABLE, Input, Machine, State
from .memo import chash, id_payload, policy_of_sp, sp_of_policy
from .modes import MODES, Auth, ModeSpec, Transport
from .wire import ENV_KEY_LENGTH, RAND_LENGTH, check_leniencies, digest, identities, msg_prf, now_dt

__all__ = ["Initiator"]

_NULL_ENCR = EncrAlg.NULL
_ERROR = DataType.ERROR


def _psk_of(store: PskStore | None, identity: str | None) -> bytes | bytearray:
    key = store.lookup(identity) if store is not None else None
    if not key:
        raise IdentityError("no pre-shared key for the peer")
    return key


class Initiator(Machine):
    """The party that starts an exchange (the SIP offerer / RTSP key sender).

    ``rng`` overrides the endpoint's randomness for this exchange (e.g. a seeded stream that a
    later process re-runs, as ``mikey finish`` does).
    """

    _table = INITIATOR_TABLE

    def __init__(self, endpoint: Endpoint, rng: Rng | None = None) -> None:
        if not isinstance(endpoint, Endpoint):
            raise TypeError("Initiator needs an Endpoint (it owns the replay cache)")
        self.state = State.IDLE
        self.endpoint = endpoint
        self.config: ExchangeConfig = endpoint.config
        self.rng: Rng = rng if rng is not None else endpoint.rng
        self._spec: ModeSpec = MODES[self.config.mode]
        self._t_i = b""
        self._rand = b""
        self._csb_id = 0
        self._cs_map: tuple[SrtpIdEntry, ...] = ()
        self._policies: dict[int, SrtpPolicy] = {}
        self._tgk: bytearray | None = None
        self._keys: tuple[KeyData, ...] = ()
        self._transport: TransportKeys | None = None
        self._dh_x: int | None = None
        self._dh_i = b""
        self._rekey = False
        self._now = 0.0
        self.result: KeyingResult | None = None

    @classmethod
    def resume_rsa_r(cls, endpoint: Endpoint, i_message: bytes) -> Initiator:
        """The pending RSA-R initiator that sent ``i_message``, rebuilt from that message.

        An RSA-R I_MESSAGE (RFC 4738 §3) carries no secret: the keys come in the answer,
        encrypted to the initiator's own key. So CSB ID, CS map, T_i, RAND and the policies are
        all in the offer, and the initiator's credentials are enough to process the answer
        later (``mikey pcap`` opens a captured exchange this way). Raises :class:`MikeyError`
        when the message is not an RSA-R I_MESSAGE this configuration could have sent.
        """
        cfg = endpoint.config
        if cfg.mode != Mode.RSA_R:
            raise MikeyError("only an RSA-R initiator can be resumed from its I_MESSAGE")
        msg = parse_message(i_message, lenient=cfg.lenient, threegpp=cfg.threegpp_code_points)
        check_leniencies(msg, cfg, rekey=False)
        t, rand = msg.find(Timestamp), msg.find(Rand)
        if msg.data_type != MODES[Mode.RSA_R].init_type or t is None or rand is None:
            raise ProtocolError("not an RSA-R I_MESSAGE", error_no=ErrorNo.INVALID_DT)
        init = cls(endpoint)
        nxt = init._advance(Input.START)
        init._csb_id = msg.csb_id
        init._cs_map = tuple(msg.header.srtp_entries)
        init._t_i = t.value
        init._rand = rand.value
        init._policies = {
            sp.policy_no: policy_of_sp(sp, cfg.lenient) for sp in msg.find_all(SecurityPolicy)
        }
        init.state = nxt
        return init

    @property
    def expects_response(self) -> bool:
        """False only for PSK/PK without the V flag (no R_MESSAGE will come)."""
        return self._spec.always_answers or self.config.verify

    # -- building the I_MESSAGE -------------------------------------------------------------

    def start(
        self,
        now: float,
        streams: Sequence[StreamSpec] = (StreamSpec(),),
        *,
        csb_id: int | None = None,
        rekey_of: RegistrationSa | None = None,
    ) -> bytes:
        """Build the I_MESSAGE. ``rekey_of`` keeps the CSB ID of an established bundle."""
        nxt = self._advance(Input.START)
        try:
            out = self._build(now, streams, csb_id, rekey_of)
        except BaseException:
            self.state = State.FAILED
            self._cleanup()
            raise
        self.state = nxt
        if not self.expects_response:
            self.result = self._result(t_r=None, responder_id=self.config.peer_identity)
        return out

    def _build(
        self,
        now: float,
        streams: Sequence[StreamSpec],
        csb_id: int | None,
        rekey_of: RegistrationSa | None,
    ) -> bytes:
        cfg = self.config
        spec = self._spec
        self._now = now
        if not streams or len(streams) > 255:
            raise MikeyError("an offer needs 1..255 crypto sessions")
        if rekey_of is not None:
            csb_id = rekey_of.csb_id
            self._rekey = True
        if csb_id is None:
            csb_id = int.from_bytes(self.rng(4), "big")
        self._csb_id = csb_id
        self._cs_map = tuple(SrtpIdEntry(s.policy_no, s.ssrc, s.roc) for s in streams)
        sps: list[SecurityPolicy] = []
        for no in sorted({s.policy_no for s in streams}):
            if no >= len(cfg.offered):
                raise MikeyError(f"stream refers to policy {no}, only {len(cfg.offered)} offered")
            pol = cfg.offered[no]
            self._policies[no] = pol
            sps.append(sp_of_policy(pol, no, cfg.sp_style))
        hdr = Header(
            data_type=spec.init_type,
            csb_id=csb_id,
            cs_map=self._cs_map,
            v=self.expects_response,
            prf=cfg.prf,
        )
        t = make_timestamp(now, cfg.ts_type)
        self._t_i = t.value
        self._rand = self.rng(RAND_LENGTH)
        head: list[Payload] = [t, Rand(self._rand)]
        ids: list[Payload] = []
        if cfg.send_identities and cfg.identity:
            ids.append(id_payload(cfg.identity))
            if cfg.peer_identity and spec.auth is Auth.MAC:
                ids.append(id_payload(cfg.peer_identity))
        return _BUILDERS[spec.transport](self, hdr, head, ids, sps)

    def _signed_head(
        self, head: list[Payload], ids: list[Payload], creds: Credentials
    ) -> list[Payload]:
        """T, RAND, IDi, our certificate chain and IDr: how a signed I_MESSAGE starts."""
        out = [*head, *ids, *cert_payloads(creds)]
        if self.config.peer_identity and ids:
            # plain ID payloads are read in order (IDi, then IDr): an IDr alone would be IDi
            out.append(id_payload(self.config.peer_identity))
        return out

    def _own_creds(self, what: str) -> Credentials:
        creds = self.config.credentials
        if creds is None:
            raise CertificateError(f"{what} needs own credentials")
        return creds

    def _psk_transport_keys(self, encr_alg: EncrAlg) -> TransportKeys:
        """encr/salt/auth keys from the PSK for our KEMAC (RFC 3830 §4.1.4); kept for V/ERR."""
        cfg = self.config
        psk = _psk_of(cfg.psk, cfg.peer_identity)
        try:
            tk = derive_transport_keys(
                psk,
                self._csb_id,
                self._rand,
                cfg.prf,
                encr_alg,
                cfg.kemac_mac,
                minisip_compat=cfg.minisip_compat,
            )
        finally:
            if isinstance(psk, bytearray):  # the store's copy (PskStore.lookup)
                wipe(psk)
        self._transport = tk
        return tk

    def _kemac_plain(self, with_id: str | None) -> bytearray:
        self._keys, self._tgk = new_key_data(
            self.config, self.rng, self._policies[min(self._policies)]
        )
        return kemac_plaintext(with_id, self._keys, self.config.kemac_encr)

    def _build_psk(
        self, hdr: Header, head: list[Payload], ids: list[Payload], sps: list[SecurityPolicy]
    ) -> bytes:
        """PSK (RFC 3830 §3.1): KEMAC under the PSK's keys, MAC over the whole message."""
        cfg = self.config
        tk = self._psk_transport_keys(cfg.kemac_encr)
        plain = self._kemac_plain(None)
        try:
            enc = crypto.encrypt_kemac(cfg.kemac_encr, tk, self._csb_id, self._t_i, plain)
        finally:
            wipe(plain)
        kemac = Kemac(cfg.kemac_encr, enc, cfg.kemac_mac, bytes(MAC_LENGTH[cfg.kemac_mac]))
        return encode_maced(hdr, (*head, *ids, *sps, kemac), cfg.kemac_mac, tk.auth_key)

    def _build_pk(
        self, hdr: Header, head: list[Payload], ids: list[Payload], sps: list[SecurityPolicy]
    ) -> bytes:
        """PK (RFC 3830 §3.2): KEMAC under an envelope key sent in PKE to the peer, signed."""
        cfg = self.config
        creds = cfg.credentials
        peer = cfg.peer_certificate
        if creds is None or peer is None:
            raise CertificateError(
                "public-key mode needs own credentials and the peer's certificate"
            )
        if cfg.trust is not None:
            cfg.trust.verify_chain(peer, (), now_dt(self._now), "encrypt")
        if cfg.peer_identity is not None:
            # the envelope key goes to the certificate's holder: it must be the peer we call
            bind_certificate(peer, None, cfg.peer_identity, cfg.cert_identities, field="IDr")
        env_key = bytearray(self.rng(ENV_KEY_LENGTH))
        try:
            tk = derive_transport_keys(
                env_key, self._csb_id, self._rand, cfg.prf, cfg.kemac_encr, cfg.kemac_mac
            )
            self._transport = tk
            plain = self._kemac_plain(cfg.identity)
            try:
                enc = crypto.encrypt_kemac(cfg.kemac_encr, tk, self._csb_id, self._t_i, plain)
            finally:
                wipe(plain)
            kemac = kemac_mac_alone(cfg.kemac_encr, enc, cfg.kemac_mac, tk.auth_key)
            pke = Pke(PkeCache.NO_CACHE, crypto.rsa_encrypt_envelope(rsa_public(peer), env_key))
        finally:
            wipe(env_key)
        # RFC 3830 §3.2: CHASH is RECOMMENDED; minisip aborts on it (send_chash=False).
        tail: list[Payload] = [kemac, chash(peer), pke] if cfg.send_chash else [kemac, pke]
        body = [*self._signed_head(head, ids, creds), *sps, *tail]
        return encode_signed(hdr, body, creds, sign_type=cfg.sign_type, hash_alg=cfg.sign_hash)

    def _build_dh(
        self, hdr: Header, head: list[Payload], ids: list[Payload], sps: list[SecurityPolicy]
    ) -> bytes:
        """DH-signed (RFC 3830 §3.3) or DHHMAC (RFC 4650): our DH value, signed or MACed."""
        cfg = self.config
        group = cfg.dh_group
        self._dh_x = dh.generate_private(group, self.rng)
        self._dh_i = dh.public_value(group, self._dh_x)
        dhi = DhPayload(group, self._dh_i)
        if self._spec.auth is Auth.SIGN:
            creds = self._own_creds("DH mode")
            body = [*self._signed_head(head, ids, creds), *sps, dhi]
            return encode_signed(hdr, body, creds, sign_type=cfg.sign_type, hash_alg=cfg.sign_hash)
        # DHHMAC: a KEMAC with no keys, its MAC over the whole message
        tk = self._psk_transport_keys(_NULL_ENCR)
        if cfg.kemac_mac == MacAlg.NULL:
            raise MikeyError("DHHMAC needs a MAC algorithm")
        kemac = Kemac(_NULL_ENCR, b"", cfg.kemac_mac, bytes(MAC_LENGTH[cfg.kemac_mac]))
        return encode_maced(hdr, (*head, *ids, *sps, dhi, kemac), cfg.kemac_mac, tk.auth_key)

    def _build_rsa_r(
        self, hdr: Header, head: list[Payload], ids: list[Payload], sps: list[SecurityPolicy]
    ) -> bytes:
        """RSA-R (RFC 4738): a signed request; the responder sends the keys."""
        cfg = self.config
        creds = self._own_creds("RSA-R mode")
        body = [*self._signed_head(head, ids, creds), *sps]
        return encode_signed(hdr, body, creds, sign_type=cfg.sign_type, hash_alg=cfg.sign_hash)

    # -- processing the answer --------------------------------------------------------------

    def finish(self, data: bytes | None, now: float) -> ExchangeCompleted | ExchangeRefused:
        """Process the R_MESSAGE (or ``None`` when no response is expected): the keys, or the
        refusal — the same outcomes :meth:`Responder.respond` returns (``answer`` is always
        None here: an initiator sends nothing back).

        A MIKEY error message from the peer is refused with a :class:`PeerError` (its ERR
        numbers, and whether V authenticated it); anything unacceptable with the
        :class:`MikeyError` that says why. A refused exchange keeps no keys.
        """
        nxt = self._advance(Input.FINISH)
        try:
            if data is None:
                if self.expects_response or self.result is None:
                    raise ProtocolError("a response message was expected")
                result = self.result
            else:
                if not self.expects_response:
                    raise ProtocolError("no response was expected in this mode")
                result = self._process(bytes(data), now)
        except MikeyError as exc:
            self.abort()
            return ExchangeRefused(None, exc)
        except BaseException:
            self.abort()
            raise
        self.state = nxt
        self.result = result
        self._cleanup()
        return ExchangeCompleted(None, result)

    def abort(self) -> None:
        """Give up: wipe everything this initiator holds."""
        self.state = State.FAILED
        if self.result is not None:
            self.result.wipe()
            self.result = None
        self._cleanup()

    def _cleanup(self) -> None:
        wipe(self._tgk)
        wipe_keys(self._keys)
        if self._transport is not None:
            self._transport.wipe()
        self._dh_x = None

    def _process(self, raw: bytes, now: float) -> KeyingResult:
        cfg = self.config
        spec = self._spec
        # decode and composition
        msg = parse_message(raw, lenient=cfg.lenient, threegpp=cfg.threegpp_code_points)
        check_leniencies(msg, cfg, rekey=False)
        if msg.csb_id != self._csb_id:
            raise ProtocolError("response for another CSB ID", error_no=ErrorNo.UNSPECIFIED)
        if msg.data_type == _ERROR:
            self._raise_peer_error(raw, msg)
        if msg.data_type != spec.resp_type:
            raise ProtocolError(
                f"unexpected data type {msg.data_type}", error_no=ErrorNo.INVALID_DT
            )
        t = msg.find(Timestamp)
        if t is None:
            raise ProtocolError("response without T", error_no=ErrorNo.INVALID_TS)
        claimed = identities(msg)[1]
        expected = cfg.peer_identity
        # authentication, then identity (nothing about IDr is said before the MAC/SIGN holds)
        if spec.responder_signs:
            cert = peer_certificate(msg, cfg.trust, cfg.peer_certificate, now, "peer")
            if spec.transport is Transport.RSA_R:
                extra = (claimed or "").encode() + t.value  # SIGNr covers IDr || T_r
                verify_signed(raw, msg, cert, cfg.sign_hash, extra)
            else:
                verify_signed(raw, msg, cert, cfg.sign_hash)
                self._check_dh_echo(msg)
            # RFC 3830 §4.3: IDr (or, without one, the expected peer) must be the certificate's
            responder_id: str | None = bind_certificate(
                cert, claimed, expected, cfg.cert_identities, field="IDr"
            )
        else:
            if spec.transport is Transport.DH:
                self._verify_dhhmac(raw, msg)
            else:
                self._verify_v(raw, msg)
            if claimed and expected and not same_identity(claimed, expected):
                raise IdentityError(f"IDr {claimed} is not the expected peer {expected}")
            responder_id = claimed or expected
        self.endpoint.replay.check(
            t, peer=responder_id or "", csb_id=msg.csb_id, digest=digest(raw), now=now
        )
        cs_map = self._merge_map(msg)
        if spec.transport is Transport.DH:
            dhr = self._dh_r(msg)
            assert self._dh_x is not None
            y = dh.validate_peer_value(cfg.dh_group, dhr.value)
            self._tgk = dh.shared_secret(cfg.dh_group, self._dh_x, y)
            self._keys = ()
        elif spec.transport is Transport.RSA_R:
            self._rsa_r_keys(msg, t)
        self._cs_map = cs_map
        return self._result(t_r=t.value, responder_id=responder_id)

    def _raise_peer_error(self, raw: bytes, msg: Message) -> None:
        errs = tuple(
            ErrorNo(e.error_no) if isinstance(e.error_no, ErrorNo) else ErrorNo.UNSPECIFIED
            for e in msg.find_all(Err)
        )
        authenticated = False
        v = msg.find(Verification)
        if v is not None and self._transport is not None and len(self._transport.auth_key):
            try:
                self._verify_v(raw, msg)
                authenticated = True
            except AuthenticationError:
                authenticated = False
        names = ", ".join(e.name for e in errs) or "no ERR payload"
        raise PeerError(f"peer refused the exchange: {names}", errs, authenticated=authenticated)

    def _verify_v(self, raw: bytes, msg: Message) -> None:
        """V (RFC 3830 §5.2): a MAC over the R_MESSAGE || T_i under the transport auth key."""
        v = msg.payloads[-1] if msg.payloads else None
        alg = self._spec.fixed_v_mac or self.config.kemac_mac
        if not isinstance(v, Verification) or self._transport is None or v.auth_alg != alg:
            raise AuthenticationError()
        verify_mac_field(v.auth_alg, self._transport.auth_key, raw, msg, v.data, extra=self._t_i)

    def _verify_dhhmac(self, raw: bytes, msg: Message) -> None:
        """DHHMAC (RFC 4650): our DH value echoed, a KEMAC whose MAC covers the message."""
        self._check_dh_echo(msg)
        kem = msg.payloads[-1] if msg.payloads else None
        mac_alg = self.config.kemac_mac
        if not isinstance(kem, Kemac) or self._transport is None or kem.mac_alg != mac_alg:
            raise AuthenticationError()
        verify_mac_field(mac_alg, self._transport.auth_key, raw, msg, kem.mac)

    def _dh_r(self, msg: Message) -> DhPayload:
        dhs = msg.find_all(DhPayload)
        if len(dhs) != 2:
            raise ProtocolError("response needs DHr and DHi", error_no=ErrorNo.INVALID_DH)
        if dhs[0].group != self.config.dh_group:
            raise ProtocolError("DH group changed", error_no=ErrorNo.INVALID_DH)
        return dhs[0]

    def _check_dh_echo(self, msg: Message) -> None:
        dhs = msg.find_all(DhPayload)
        if len(dhs) != 2 or dhs[1].value != self._dh_i:
            raise AuthenticationError()

    def _merge_map(self, msg: Message) -> tuple[SrtpIdEntry, ...]:
        theirs = msg.header.srtp_entries
        if len(theirs) != len(self._cs_map) or msg.header.cs_map_type != CsIdMapType.SRTP_ID:
            raise ProtocolError("response changes the CS ID map", error_no=ErrorNo.UNSPECIFIED)
        out = []
        for mine, resp in zip(self._cs_map, theirs, strict=True):
            if mine.policy_no != resp.policy_no or (mine.ssrc and mine.ssrc != resp.ssrc):
                raise ProtocolError("response changes the CS ID map", error_no=ErrorNo.UNSPECIFIED)
            out.append(SrtpIdEntry(mine.policy_no, resp.ssrc, mine.roc))
        return tuple(out)

    def _rsa_r_keys(self, msg: Message, t: Timestamp) -> None:
        """RSA-R: the envelope key for us in PKE opens the responder's KEMAC (the TGK)."""
        cfg = self.config
        creds = cfg.credentials
        kem = msg.find(Kemac)
        pke = msg.find(Pke)
        if creds is None or kem is None or pke is None:
            raise ProtocolError("RSA-R response needs KEMAC and PKE", error_no=ErrorNo.UNSPECIFIED)
        env_key = crypto.rsa_decrypt_envelope(creds.private_key, pke.data, None, self.rng)
        try:
            keys, _, tk = open_kemac(
                kem,
                env_key,
                csb_id=self._csb_id,
                rand=self._rand,
                ts_value=t.value,
                prf=msg_prf(msg),
                cfg=cfg,
                first=PayloadType.ID,
                mac_scope_kemac_only=True,
                msg=msg,
                raw=None,
            )
            tk.wipe()
        finally:
            wipe(env_key)
        self._keys = keys
        tgks = [k for k in keys if k.key_type in (KeyDataType.TGK, KeyDataType.TGK_SALT)]
        if tgks:
            self._tgk = bytearray(tgks[0].key)

    def _result(self, *, t_r: bytes | None, responder_id: str | None) -> KeyingResult:
        data_sa = derive_data_sa(
            tgk=self._tgk,
            keys=self._keys,
            csb_id=self._csb_id,
            rand=self._rand,
            prf=self.config.prf,
            cs_map=self._cs_map,
            policies=self._policies,
            minisip_compat=self.config.minisip_compat,
        )
        reg = RegistrationSa(
            mode=self.config.mode,
            role=Role.INITIATOR,
            csb_id=self._csb_id,
            prf=self.config.prf,
            rand=self._rand,
            t_initiator=self._t_i,
            t_responder=t_r,
            initiator_id=self.config.identity,
            responder_id=responder_id,
        )
        return KeyingResult(reg, data_sa, rekey=self._rekey)


_Builder = Callable[[Initiator, Header, list[Payload], list[Payload], list[SecurityPolicy]], bytes]
#: the I_MESSAGE builder of each key transport
_BUILDERS: dict[Transport, _Builder] = {
    Transport.PSK_KEMAC: Initiator._build_psk,
    Transport.ENVELOPE: Initiator._build_pk,
    Transport.DH: Initiator._build_dh,
    Transport.RSA_R: Initiator._build_rsa_r,
}
