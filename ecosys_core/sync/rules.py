"""The sync rules as pure functions: given this device's entry of a path and a peer's, what happens.

No disk, no store: :func:`decide` is what every device computes alike, so that whatever order devices
meet in, they keep the same version at the path and name the same conflict copy (DESIGN.md §1):

- the remote version is dominated by ours (or equal) → nothing to do, answer MODIFICATION_DONE;
- it dominates ours → take it;
- concurrent with equal content → take it with the merged version (no conflict);
- concurrent otherwise → the winner key picks who stays at the path; the loser is kept as a conflict
  copy unless it is a deletion (nothing to keep).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath

from ..store.index import Entry
from ..store.versions import Order, Version, compare, merge


class Action(enum.Enum):
    """What to do with a remote version of a path."""

    UP_TO_DATE = "up_to_date"  # ours equals or dominates it
    TAKE_REMOTE = "take_remote"  # its content (or tombstone) becomes ours
    KEEP_LOCAL = "keep_local"  # concurrent, ours wins and the remote is a deletion: only merge versions
    CONFLICT_REMOTE_WINS = "conflict_remote_wins"  # ours moves to a conflict copy, theirs takes the path
    CONFLICT_LOCAL_WINS = "conflict_local_wins"  # theirs is written as a conflict copy, ours stays


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`decide`.

    ``version`` is the version the path has here afterwards; ``relay_to_peer`` is True when the result
    is news to the sender too (a merge), so it is queued back to it; ``loser`` is the version kept as a
    conflict copy (CONFLICT_* only) and ``local`` this device's entry as the rules saw it.
    """

    action: Action
    version: Version
    relay_to_peer: bool = False
    loser: Entry | None = None
    local: Entry | None = None

    @property
    def conflict_names(self) -> tuple[str, ...]:
        """The conflict copy's names to try in order (empty unless a conflict keeps a loser)."""
        if self.loser is None:
            return ()
        return tuple(conflict_name(self.loser.path, self.loser.modified_ns, self.loser.modified_by[:7], tag)
                     for tag in ("", self.loser.hash[:8], self.loser.hash))


def winner_key(entry: Entry) -> tuple[int, int, str, str]:
    """The order concurrent versions are ranked in, the same on every device: a modification beats a
    deletion, then the later edit, then the device id, then the content hash, so no two different
    versions ever tie."""
    return (0 if entry.deleted else 1, entry.modified_ns, entry.modified_by, entry.hash)


def same_content(local: Entry | None, remote: Entry) -> bool:
    """True when applying ``remote`` would leave the path's content as it is (both absent or equal hash)."""
    if local is None or local.deleted:
        return remote.deleted
    return not remote.deleted and local.hash == remote.hash


def decide(local: Entry | None, remote: Entry, *, backup_mode: bool = False, present: bool = True) -> Decision:
    """What to do with ``remote``, a peer's version of the path whose entry here is ``local``.

    ``present`` says whether the file is on disk here: in backup mode a deletion is not recorded, so a
    missing file with a live entry is treated as deleted (nothing of it is left to keep or win with).
    """
    if local is not None and not local.deleted and backup_mode and not present:
        local = local.but(deleted=True, hash="", size=0)
    local_version = local.version if local else {}
    order = compare(remote.version, local_version)
    if order in (Order.EQUAL, Order.OLDER):
        return Decision(Action.UP_TO_DATE, dict(local_version), local=local)
    if order is Order.NEWER:
        return Decision(Action.TAKE_REMOTE, dict(remote.version), local=local)
    merged = merge(local_version, remote.version)
    if same_content(local, remote):
        return Decision(Action.TAKE_REMOTE, merged, relay_to_peer=True, local=local)
    assert local is not None  # concurrent with an absent path would be equal content
    remote_wins = winner_key(remote) > winner_key(local)
    loser = local if remote_wins else remote
    if loser.deleted:
        action = Action.TAKE_REMOTE if remote_wins else Action.KEEP_LOCAL
        return Decision(action, merged, relay_to_peer=True, local=local)
    action = Action.CONFLICT_REMOTE_WINS if remote_wins else Action.CONFLICT_LOCAL_WINS
    return Decision(action, merged, relay_to_peer=True, loser=loser, local=local)


def conflict_name(path: str, modified_ns: int, device: str, tag: str = "") -> str:
    """``dir/name.sync-conflict-YYYYMMDD-HHMMSS-<device>[-<tag>].ext`` for the losing version of ``path``.

    Built only from the loser's own facts, so every device that resolves the conflict names it alike.
    ``tag`` (a part of the loser's content hash) tells apart two losses of one device in one second.
    """
    p = PurePosixPath(path)
    stamp = datetime.fromtimestamp(modified_ns / 1e9, timezone.utc).strftime("%Y%m%d-%H%M%S")
    suffix = p.suffix if p.suffix and p.stem else ""
    stem = p.name[: -len(suffix)] if suffix else p.name
    name = f"{stem}.sync-conflict-{stamp}-{device.upper()}{'-' + tag.upper() if tag else ''}{suffix}"
    return str(p.with_name(name)) if str(p.parent) != "." else name
