"""A largage offer's state machine: the moves the protocol allows, and nothing else."""

from __future__ import annotations

import pytest

from ecosys_core.largage import FINAL_STATES, IllegalTransition, Offer, OfferState


def offer(direction: str = "send") -> Offer:
    return Offer("0123456789abcdef", direction, "ab" * 32, "laptop", "OTDL", [{"name": "a.txt"}], 10)


def test_a_sent_offer_goes_waiting_sending_sent_done():
    o = offer()
    for state in (OfferState.SENDING, OfferState.SENT, OfferState.DONE):
        o.move(state)
    assert o.state is OfferState.DONE and o.state.final


def test_a_received_offer_goes_waiting_receiving_done():
    o = offer("receive")
    o.move(OfferState.RECEIVING)
    o.move(OfferState.DONE)
    assert o.public()["state"] == "done"


@pytest.mark.parametrize("final", sorted(FINAL_STATES, key=lambda s: s.value))
def test_a_finished_offer_never_moves_again(final: OfferState):
    o = offer()
    o.state = final
    for state in OfferState:
        with pytest.raises(IllegalTransition):
            o.move(state)
        assert not o.move_if(state)
    assert o.state is final


def test_a_cancel_that_got_there_first_is_not_overwritten():
    o = offer()
    o.move(OfferState.CANCELLED)
    assert not o.move_if(OfferState.SENDING)
    assert not o.move_if(OfferState.FAILED, "late failure")
    assert o.state is OfferState.CANCELLED and o.error == ""


def test_a_waiting_offer_cannot_be_done_or_sent():
    o = offer()
    with pytest.raises(IllegalTransition, match="waiting cannot become sent"):
        o.move(OfferState.SENT)
    with pytest.raises(IllegalTransition):
        o.move(OfferState.DONE)


def test_a_sent_offer_waits_only_for_done():
    o = offer()
    o.move(OfferState.SENDING)
    o.move(OfferState.SENT)
    assert not o.state.active and not o.state.final
    assert [s for s in OfferState if o.move_if(s)] == [OfferState.DONE]


def test_the_error_is_recorded_with_the_move():
    o = offer("receive")
    o.move(OfferState.RECEIVING)
    o.move(OfferState.FAILED, "sha256 mismatch")
    assert o.public()["error"] == "sha256 mismatch"
