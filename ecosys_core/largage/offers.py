"""A largage offer and its typed state machine: every change of state goes through :meth:`Offer.move`,
which refuses a move the protocol does not allow (a finished offer never starts again)."""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..device_ids import short_id_text


class OfferState(str, enum.Enum):
    """Where an offer is. A sent offer waits for the receiver's OFFER_DONE; the last five are final."""

    WAITING = "waiting"  # offered, the receiver's person has not answered
    SENDING = "sending"  # accepted, the sender streams
    SENT = "sent"  # the sender streamed everything, the receiver has not confirmed yet
    RECEIVING = "receiving"  # accepted, the receiver unpacks
    DONE = "done"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        """True when nothing more happens to the offer."""
        return self in FINAL_STATES

    @property
    def active(self) -> bool:
        """True while the offer can still be cancelled or fail (data may still flow)."""
        return self in (OfferState.WAITING, OfferState.SENDING, OfferState.RECEIVING)


FINAL_STATES = frozenset({OfferState.DONE, OfferState.DECLINED, OfferState.EXPIRED, OfferState.CANCELLED,
                          OfferState.FAILED})
_ENDINGS = frozenset({OfferState.CANCELLED, OfferState.FAILED})
TRANSITIONS: dict[OfferState, frozenset[OfferState]] = {
    OfferState.WAITING: frozenset({OfferState.SENDING, OfferState.RECEIVING, OfferState.DECLINED,
                                   OfferState.EXPIRED}) | _ENDINGS,
    OfferState.SENDING: frozenset({OfferState.SENT, OfferState.DONE}) | _ENDINGS,
    OfferState.SENT: frozenset({OfferState.DONE}),
    OfferState.RECEIVING: frozenset({OfferState.DONE}) | _ENDINGS,
    **{state: frozenset() for state in FINAL_STATES},
}


class IllegalTransition(ValueError):
    """An offer was asked to move to a state it cannot reach from where it is."""


@dataclass
class Offer:
    """One offer, sent or received, and how far it got."""

    offer_id: str
    direction: str  # "send" or "receive"
    peer: str
    peer_name: str
    kind: str  # OTDL or MOTDL
    files: list[dict[str, Any]]
    total: int
    state: OfferState = OfferState.WAITING
    done: int = 0
    error: str = ""
    saved: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    cancel: threading.Event = field(default_factory=threading.Event)
    queue: asyncio.Queue | None = None
    paths: list[tuple[Path, str]] = field(default_factory=list)  # sender: (local path, arcname)

    def move(self, to: OfferState, error: str | None = None) -> None:
        """Go to ``to`` (recording ``error`` when given); IllegalTransition if ``to`` cannot follow the
        current state."""
        if to not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"offer {self.offer_id}: {self.state.value} cannot become {to.value}")
        self.state = to
        if error is not None:
            self.error = error

    def move_if(self, to: OfferState, error: str | None = None) -> bool:
        """:meth:`move` when allowed; False (nothing changed) when not, as when the other side or a
        cancel got there first."""
        if to not in TRANSITIONS[self.state]:
            return False
        self.move(to, error)
        return True

    def add_done(self, count: int) -> None:
        """``count`` more file bytes went through (never counted past the total)."""
        self.done = min(self.total, self.done + count)

    def public(self) -> dict[str, Any]:
        """What the control channel shows of the offer."""
        return {"offer_id": self.offer_id, "direction": self.direction, "peer": self.peer_name or short_id_text(self.peer),
                "kind": self.kind, "count": len(self.files), "total": self.total, "done": self.done,
                "state": self.state.value, "error": self.error, "saved": self.saved,
                "names": [f["name"] for f in self.files[:10]]}
