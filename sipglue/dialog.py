"""SIP dialogs (RFC 3261 §12): identity, CSeq, route set and remote target.

A :class:`Dialog` is created by the UAC from a 2xx (or tagged 1xx) to its INVITE (§12.1.2) or by
the UAS when it answers an INVITE (§12.1.1). It builds in-dialog requests (§12.2.1.1, loose and
strict routing), the ACK for a 2xx (§13.2.2.4), checks the remote CSeq of incoming requests
(§12.2.2) and applies target refreshes (re-INVITE Contact). ``dialog.id`` is a stable string
``call-id;local-tag;remote-tag`` usable as a registry key (e.g. one GSA per dialog).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from .errors import DialogError, SipParseError
from .message import CSeq, NameAddr, Request, Response, SipUri

__all__ = ["Dialog", "DialogState", "Role", "dialog_id"]


class Role(enum.IntEnum):
    UAC = 1
    UAS = 2


class DialogState(enum.IntEnum):
    EARLY = 1
    CONFIRMED = 2
    TERMINATED = 3


def dialog_id(call_id: str, local_tag: str, remote_tag: str) -> str:
    """The registry key of a dialog (§12: Call-ID, local tag, remote tag)."""
    return f"{call_id};{local_tag};{remote_tag}"


def _first_contact(message: Request | Response) -> SipUri:
    contacts = message.contacts
    if len(contacts) != 1:
        raise DialogError("dialog-creating message needs exactly one Contact (§12.1)")
    return contacts[0].uri


@dataclass(slots=True)
class Dialog:
    """Mutable dialog state held by a UA."""

    role: Role
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr
    remote_uri: NameAddr
    remote_target: SipUri
    route_set: tuple[NameAddr, ...]
    local_seq: int
    remote_seq: int | None
    local_contact: NameAddr
    state: DialogState = DialogState.CONFIRMED
    invite_seq: int = field(default=0)

    @property
    def id(self) -> str:
        return dialog_id(self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uac(cls, invite: Request, response: Response, local_contact: NameAddr) -> Dialog:
        """UAC side, from a 2xx/1xx with To tag to ``invite`` (§12.1.2)."""
        try:
            remote = response.to
            tag = remote.tag
            local = invite.from_
            if tag is None or local.tag is None:
                raise DialogError("dialog needs both tags (§12.1.2)")
            return cls(
                role=Role.UAC,
                call_id=invite.call_id,
                local_tag=local.tag,
                remote_tag=tag,
                local_uri=local,
                remote_uri=remote,
                remote_target=_first_contact(response),
                route_set=tuple(reversed(response.record_route)),
                local_seq=invite.cseq.seq,
                remote_seq=None,
                local_contact=local_contact,
                state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
                invite_seq=invite.cseq.seq,
            )
        except SipParseError as exc:
            raise DialogError(f"cannot create dialog: {exc}") from exc

    @classmethod
    def from_uas(cls, invite: Request, local_tag: str, local_contact: NameAddr) -> Dialog:
        """UAS side, when answering ``invite`` with a tagged 2xx (§12.1.1)."""
        try:
            remote = invite.from_
            if remote.tag is None:
                raise DialogError("INVITE without From tag (§8.1.1.3)")
            return cls(
                role=Role.UAS,
                call_id=invite.call_id,
                local_tag=local_tag,
                remote_tag=remote.tag,
                local_uri=invite.to.with_tag(local_tag),
                remote_uri=remote,
                remote_target=_first_contact(invite),
                route_set=tuple(invite.record_route),
                local_seq=0,
                remote_seq=invite.cseq.seq,
                local_contact=local_contact,
                invite_seq=invite.cseq.seq,
            )
        except SipParseError as exc:
            raise DialogError(f"cannot create dialog: {exc}") from exc

    def matches(self, message: Request | Response) -> bool:
        """Whether an in-dialog message belongs to this dialog (§12.2)."""
        try:
            if message.call_id != self.call_id:
                return False
            if isinstance(message, Request):
                return message.from_.tag == self.remote_tag and message.to.tag == self.local_tag
            return message.from_.tag == self.local_tag and message.to.tag == self.remote_tag
        except SipParseError:
            return False

    def next_hop(self) -> SipUri:
        """Where an in-dialog request goes first: the first route, else the remote target."""
        return self.route_set[0].uri if self.route_set else self.remote_target

    def _uri_and_routes(self) -> tuple[str, list[str]]:
        if not self.route_set:
            return str(self.remote_target), []
        if self.route_set[0].uri.lr:  # §12.2.1.1 loose routing
            return str(self.remote_target), [str(r) for r in self.route_set]
        # strict routing: first route becomes the Request-URI, the remote target is appended
        first = self.route_set[0].uri
        routes = [str(r) for r in self.route_set[1:]]
        routes.append(f"<{self.remote_target}>")
        return str(first), routes

    def create_request(
        self,
        method: str,
        via: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Request:
        """A new in-dialog request with the next local CSeq (§12.2.1.1). ``via`` is complete."""
        if self.state == DialogState.TERMINATED:
            raise DialogError("dialog terminated")
        if method in ("ACK", "CANCEL"):
            raise DialogError("ACK and CANCEL reuse the INVITE's CSeq; use create_ack")
        self.local_seq += 1
        if method == "INVITE":
            self.invite_seq = self.local_seq
        return self._build(
            method, self.local_seq, via, body=body, content_type=content_type, extra=headers
        )

    def create_ack(
        self, via: str, *, body: bytes = b"", content_type: str | None = None
    ) -> Request:
        """The ACK for a 2xx to the last INVITE: same CSeq number, new branch (§13.2.2.4)."""
        return self._build(
            "ACK", self.invite_seq, via, body=body, content_type=content_type, extra=()
        )

    def _build(
        self,
        method: str,
        seq: int,
        via: str,
        *,
        body: bytes,
        content_type: str | None,
        extra: Sequence[tuple[str, str]],
    ) -> Request:
        uri, routes = self._uri_and_routes()
        out: list[tuple[str, str]] = [("Via", via), ("Max-Forwards", "70")]
        out += [("Route", r) for r in routes]
        out += [
            ("From", str(self.local_uri.with_tag(self.local_tag))),
            ("To", str(self.remote_uri.with_tag(self.remote_tag))),
            ("Call-ID", self.call_id),
            ("CSeq", str(CSeq(seq, method))),
        ]
        if method in ("INVITE", "UPDATE"):
            out.append(("Contact", str(self.local_contact)))
        out += list(extra)
        if body:
            out.append(("Content-Type", content_type or "application/sdp"))
        return Request(method, uri, tuple(out), body)

    def receive_request(self, request: Request) -> None:
        """Check and record an in-dialog request's CSeq; apply a target refresh (§12.2.2)."""
        if not self.matches(request):
            raise DialogError("request does not belong to this dialog")
        if request.method in ("ACK", "CANCEL"):
            return
        seq = request.cseq.seq
        if self.remote_seq is not None and seq <= self.remote_seq:
            raise DialogError("remote CSeq out of order (§12.2.2)")
        self.remote_seq = seq
        if request.method == "INVITE" and request.contacts:  # target refresh (§12.2.2)
            self.remote_target = _first_contact(request)

    def receive_refresh_response(self, response: Response) -> None:
        """Apply the Contact of a 2xx to an in-dialog INVITE as the new remote target."""
        if 200 <= response.status < 300 and response.contacts:
            self.remote_target = _first_contact(response)

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED
