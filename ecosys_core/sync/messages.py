"""The messages sync engines exchange. The network layer frames them; the engine never sees sockets."""

from __future__ import annotations

from collections import abc
from dataclasses import dataclass, field
from typing import Iterable, Union


@dataclass
class Modification:
    """The seed's modification event: ``path`` is now ``version`` with content ``hash`` (or deleted).

    ``delta`` rebuilds that content from the content hashing to ``base_hash`` ("" means from nothing);
    it is a lazy stream of byte blocks (sync.delta's format), None for a deletion or when only the
    version changed. ``reply`` marks an answer to NEED_STATE, so a failure there is not asked again.
    ``signed``: the delta (a whole content) ends with the content's chunk signature, a
    :class:`SignatureTrailer`, so the receiver keeps it instead of cutting the content again.
    """

    secure_id: str
    path: str
    version: dict[str, int]
    hash: str
    size: int
    modified_ns: int
    modified_by: str
    deleted: bool
    base_hash: str = ""
    delta: Iterable[bytes] | None = field(default=None, repr=False)
    reply: bool = False
    signed: bool = False

    flag = "MODIFICATION"


@dataclass(frozen=True)
class SignatureTrailer:
    """The last block of a signed modification's delta stream: not delta bytes but the content's chunk
    signature (``Signature.to_bytes``), as its sender kept it. Only a chunk signature's use is at stake in
    trusting it: what a delta built from it rebuilds is checked against its BLAKE3 hash like any other.
    It holds the bytes it was given, not a copy (2.6 MB at 128 MiB, at the receiver's peak of memory)."""

    data: bytes

    def __len__(self) -> int:
        return len(self.data)


@dataclass
class ModificationDone:
    """The receiver has ``path`` at ``version`` or newer: drop it from devices_to_patch."""

    secure_id: str
    path: str
    version: dict[str, int]

    flag = "MODIFICATION_DONE"


@dataclass
class NeedState:
    """The receiver cannot use the delta it got: send ``path`` again against what it has.

    ``have_hash`` is its current content ("" for none) and ``signature`` that content's chunk signature
    (empty: send the whole content).
    """

    secure_id: str
    path: str
    have_hash: str
    signature: bytes = field(default=b"", repr=False)

    flag = "NEED_STATE"


@dataclass
class Members:
    """A task's member list as the sender knows it (``sync.membership``): records with ``device_id``,
    ``seq``, ``removed``, ``by`` and ``at``. Sent at each meeting and when the list changes."""

    secure_id: str
    members: list = field(default_factory=list)
    path: str = ""  # not about a path: errors about it name none

    flag = "MEMBERS"


Message = Union[Modification, ModificationDone, NeedState, Members]


def is_streaming(message: Message) -> bool:
    """True for a modification whose delta is a stream still to be read (from disk on the sender, from
    DATA frames on the receiver); a delta already all here is ``bytes`` or a list of blocks."""
    return isinstance(message, Modification) and isinstance(message.delta, abc.Iterator)
