"""GSA lifecycle: establishment, re-key, every teardown path, timers, audit, transition table."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mikey.keying import SrtpPolicy
from srtp import _libsrtp
from srtp.context import OutboundStream
from srtp.errors import (
    GsaStateError,
    KeyMaterialError,
    SrtpAuthenticationError,
    UnknownGsaError,
    UnsupportedPolicyError,
)
from srtp.gsa import (
    TRANSITIONS,
    AuditReport,
    GsaConfig,
    GsaEstablished,
    GsaInput,
    GsaRegistry,
    GsaRekeyCompleted,
    GsaRekeyed,
    GsaState,
    GsaTornDown,
    TeardownReason,
    next_state,
)

from .helpers import SSRC, entry, keying, rtp

PEER = 0x0BADF00D


def call_keys(seed: int = 1, mki: bool = False) -> tuple:
    """A keying result for one call: our SSRC and the peer's, and an independent peer copy."""
    m1 = b"\x00\x01" if mki else None
    m2 = b"\x00\x02" if mki else None
    ours = keying(entry(ssrc=SSRC, seed=seed, mki=m1), entry(ssrc=PEER, seed=seed + 1, mki=m2))
    peer_tx = OutboundStream([entry(ssrc=PEER, seed=seed + 1, mki=m2)])
    return ours, peer_tx


def test_establish_media_flows_then_bye_wipes_everything(registry: GsaRegistry) -> None:
    result, peer_tx = call_keys()
    gsa = registry.establish("dialog-1", result, 10.0, outbound_ssrcs={SSRC})
    assert gsa.state is GsaState.ACTIVE
    assert gsa.live_contexts == 2
    assert gsa.inbound_stream(PEER).unprotect(peer_tx.protect(rtp(1, ssrc=PEER))) == rtp(
        1, ssrc=PEER
    )
    assert len(gsa.outbound_stream(SSRC).protect(rtp(1))) == 182
    assert registry.audit().live_gsas == 1
    buffers = list(gsa.key_buffers())
    assert all(any(b) for b in buffers)
    event = registry.teardown("dialog-1", TeardownReason.BYE, 20.0)
    assert event == GsaTornDown("dialog-1", TeardownReason.BYE, 20.0)
    assert all(b == bytearray(len(b)) for b in buffers)
    assert result.data_sa[0].wiped
    assert gsa.state is GsaState.TORN_DOWN
    assert registry.teardown("dialog-1", TeardownReason.BYE, 21.0) is None  # idempotent
    events = registry.drain_events()
    assert [type(e) for e in events] == [GsaEstablished, GsaTornDown]
    peer_tx.close()
    assert registry.audit().clean


@pytest.mark.parametrize("reason", list(TeardownReason))
def test_every_teardown_reason_wipes_and_audits_zero(
    registry: GsaRegistry, reason: TeardownReason
) -> None:
    result, peer_tx = call_keys()
    peer_tx.close()
    registry.establish("k", result, 0.0, outbound_ssrcs={SSRC})
    registry.teardown("k", reason, 1.0)
    assert all(e.wiped for e in result.data_sa)
    assert registry.audit().clean


def test_teardown_all_for_shutdown(registry: GsaRegistry) -> None:
    results = [call_keys(seed=i)[0] for i in range(3)]
    for i, r in enumerate(results):
        registry.establish(f"d{i}", r, 0.0, outbound_ssrcs={SSRC})
    assert _libsrtp.live_sessions() == 6
    events = registry.teardown_all()
    assert {e.key for e in events} == {"d0", "d1", "d2"}
    assert all(e.reason is TeardownReason.SHUTDOWN for e in events)
    assert all(e.wiped for r in results for e in r.data_sa)
    assert registry.audit().clean


def test_setup_failure_wipes_and_reports(registry: GsaRegistry) -> None:
    bad = keying(entry(SrtpPolicy(key_derivation_rate=2)))
    with pytest.raises(UnsupportedPolicyError):
        registry.establish("x", bad, 0.0)
    assert bad.data_sa[0].wiped
    assert registry.drain_events() == [GsaTornDown("x", TeardownReason.SETUP_FAILED, 0.0)]
    assert "x" not in registry
    # a partially built GSA (second entry bad) frees the first stream too
    partial = keying(entry(ssrc=1), entry(SrtpPolicy(prefix_len=1), ssrc=2))
    with pytest.raises(UnsupportedPolicyError):
        registry.establish("y", partial, 0.0)
    assert registry.audit().clean


def test_duplicate_establish_and_unknown_rekey_fail_cleanly(registry: GsaRegistry) -> None:
    registry.establish("a", call_keys()[0], 0.0, outbound_ssrcs={SSRC})
    dup = call_keys(seed=5)[0]
    with pytest.raises(GsaStateError):
        registry.establish("a", dup, 0.0)
    assert dup.data_sa[0].wiped
    assert registry.get("a").state is GsaState.ACTIVE
    stray = call_keys(seed=6)[0]
    with pytest.raises(UnknownGsaError):
        registry.rekey("nope", stray, 1.0)
    assert stray.data_sa[0].wiped
    with pytest.raises(UnknownGsaError):
        registry.finish_rekey("nope", 1.0)
    with pytest.raises(GsaStateError):
        registry.finish_rekey("a", 1.0)  # not re-keying
    registry.teardown("a", TeardownReason.BYE, 2.0)


@pytest.mark.parametrize("mki", [False, True])
def test_rekey_overlap_no_packet_lost_then_old_keys_wiped(registry: GsaRegistry, mki: bool) -> None:
    first, peer_old = call_keys(seed=1, mki=mki)
    gsa = registry.establish("d", first, 0.0, outbound_ssrcs={SSRC})
    rx = gsa.inbound_stream(PEER)
    in_flight = [peer_old.protect(rtp(s, ssrc=PEER)) for s in range(1, 6)]
    m = b"\x00\x03" if mki else None
    second = keying(entry(ssrc=PEER, seed=40, mki=m), rekey=True)
    peer_new = OutboundStream([entry(ssrc=PEER, seed=40, mki=m)])
    registry.rekey("d", second, 5.0)
    assert gsa.state is GsaState.REKEYING
    after = [peer_new.protect(rtp(s, ssrc=PEER)) for s in range(6, 11)]
    mixed = [
        after[0],
        in_flight[0],
        after[1],
        in_flight[1],
        in_flight[2],
        after[2],
        in_flight[3],
        in_flight[4],
        after[3],
        after[4],
    ]
    got = [rx.unprotect(p) for p in mixed]
    assert sorted(got) == sorted(rtp(s, ssrc=PEER) for s in range(1, 11))
    assert not any(e.wiped for e in first.data_sa)
    assert registry.expire(6.0) == []
    assert registry.expire(7.0) == [GsaRekeyCompleted("d", 7.0)]
    assert gsa.state is GsaState.ACTIVE
    assert gsa.inbound_stream(PEER).unprotect(peer_new.protect(rtp(11, ssrc=PEER))) == rtp(
        11, ssrc=PEER
    )
    with pytest.raises(SrtpAuthenticationError):
        rx.unprotect(peer_old.protect(rtp(12, ssrc=PEER)))
    # the PEER entry of the first result is retired; our outbound SSRC still uses its key
    assert not first.data_sa[0].wiped
    assert registry.audit().unwiped_buffers == 4  # first (ours) + second (peer): key + salt
    registry.teardown("d", TeardownReason.BYE, 9.0)
    assert first.data_sa[0].wiped
    assert second.data_sa[0].wiped
    assert [type(e) for e in registry.drain_events()] == [
        GsaEstablished,
        GsaRekeyed,
        GsaRekeyCompleted,
        GsaTornDown,
    ]
    peer_old.close()
    peer_new.close()


def test_rekey_wipes_retired_result_fully(registry: GsaRegistry) -> None:
    first = keying(entry(ssrc=PEER, seed=1))
    registry.establish("d", first, 0.0)
    registry.rekey("d", keying(entry(ssrc=PEER, seed=2), rekey=True), 1.0)
    registry.finish_rekey("d", 1.5)
    assert first.data_sa[0].wiped
    registry.teardown("d", TeardownReason.TEARDOWN, 2.0)


def test_rekey_refusals_leave_gsa_untouched(registry: GsaRegistry) -> None:
    registry.establish("d", keying(entry(ssrc=PEER)), 0.0)
    bad_policy = keying(entry(SrtpPolicy(auth_tag_len=4), ssrc=PEER, seed=3))
    with pytest.raises(UnsupportedPolicyError):
        registry.rekey("d", bad_policy, 1.0)
    bad_mki = keying(entry(ssrc=PEER, seed=3, mki=b"\x01"))
    with pytest.raises(KeyMaterialError):
        registry.rekey("d", bad_mki, 1.0)
    assert bad_policy.data_sa[0].wiped
    assert bad_mki.data_sa[0].wiped
    assert registry.get("d").state is GsaState.ACTIVE
    registry.teardown("d", TeardownReason.CANCEL, 2.0)


def test_rekey_adds_new_ssrc(registry: GsaRegistry) -> None:
    registry.establish("d", keying(entry(ssrc=PEER)), 0.0)
    gsa = registry.rekey(
        "d", keying(entry(ssrc=7, seed=9), entry(ssrc=8, seed=10)), 1.0, outbound_ssrcs={7}
    )
    assert set(gsa.outbound) == {7}
    assert set(gsa.inbound) == {PEER, 8}
    registry.teardown("d", TeardownReason.BYE, 2.0)


def test_expire_session_timeout_and_key_lifetime() -> None:
    reg = GsaRegistry(GsaConfig(session_timeout=30.0, key_lifetime=100.0))
    reg.establish("idle", keying(entry(ssrc=1)), 0.0)
    reg.establish("busy", keying(entry(ssrc=2)), 0.0)
    reg.touch("busy", 25.0)
    assert reg.expire(29.0) == []
    assert reg.expire(30.0) == [GsaTornDown("idle", TeardownReason.TIMEOUT, 30.0)]
    for t in (50.0, 75.0, 99.0):
        reg.touch("busy", t)
        assert reg.expire(t) == []
    assert reg.expire(100.0) == [GsaTornDown("busy", TeardownReason.KEY_EXPIRED, 100.0)]
    assert reg.audit().clean


def test_transition_table_total_function() -> None:
    for state in GsaState:
        for inp in GsaInput:
            if (state, inp) in TRANSITIONS:
                assert next_state(state, inp) is TRANSITIONS[state, inp]
            else:
                with pytest.raises(GsaStateError):
                    next_state(state, inp)
    # every non-terminal state can always be torn down
    assert all((s, GsaInput.TEARDOWN) in TRANSITIONS for s in GsaState)


OPS = st.sampled_from(["establish", "rekey", "finish", "teardown", "expire", "touch"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(OPS, st.sampled_from(["a", "b"])), max_size=25))
def test_any_operation_sequence_transitions_or_fails_cleanly(ops: list[tuple[str, str]]) -> None:
    reg = GsaRegistry(GsaConfig(session_timeout=50.0, rekey_overlap=1.0))
    model: dict[str, GsaState] = {}
    handed: list = []
    for step, (op, key) in enumerate(ops):
        now = float(step)
        seed = step + 1
        before = model.get(key)
        try:
            if op == "establish":
                r = keying(entry(ssrc=1, seed=seed))
                handed.append(r)
                reg.establish(key, r, now)
                assert before is None
                model[key] = GsaState.ACTIVE
            elif op == "rekey":
                r = keying(entry(ssrc=1, seed=seed), rekey=True)
                handed.append(r)
                reg.rekey(key, r, now)
                assert before in (GsaState.ACTIVE, GsaState.REKEYING)
                model[key] = GsaState.REKEYING
            elif op == "finish":
                reg.finish_rekey(key, now)
                assert before is GsaState.REKEYING
                model[key] = GsaState.ACTIVE
            elif op == "teardown":
                ev = reg.teardown(key, TeardownReason.BYE, now)
                assert (ev is None) == (before is None)
                model.pop(key, None)
            elif op == "touch":
                reg.touch(key, now)
                assert before is not None
            else:
                for ev in reg.expire(now):
                    if isinstance(ev, GsaRekeyCompleted):
                        model[ev.key] = GsaState.ACTIVE
                    else:
                        model.pop(ev.key, None)
        except (GsaStateError, UnknownGsaError):
            assert (op, before) in {
                ("establish", GsaState.ACTIVE),
                ("establish", GsaState.REKEYING),
                ("rekey", None),
                ("finish", None),
                ("finish", GsaState.ACTIVE),
                ("touch", None),
            }
        for k, state in model.items():
            assert reg.get(k).state is state
        assert set(model) == {k for k in ("a", "b") if k in reg}
        assert reg.audit().live_contexts == len(model) + sum(
            1 for k in model if reg.get(k).inbound[1].rekeying
        )
    reg.teardown_all()
    assert reg.audit().clean
    assert all(e.wiped for r in handed for e in r.data_sa)


def test_audit_counts_only_its_own_registry() -> None:
    """audit() is scoped: another registry's live contexts are not this one's."""
    busy, idle = GsaRegistry(), GsaRegistry()
    busy.establish("call", call_keys()[0], 0.0, outbound_ssrcs={SSRC})
    assert busy.audit().live_contexts > 0 and busy.audit().live_gsas == 1
    assert idle.audit() == AuditReport(live_gsas=0, live_contexts=0, unwiped_buffers=0)
    assert idle.audit().clean
    busy.teardown("call", TeardownReason.BYE, 1.0)
    assert busy.audit().clean
