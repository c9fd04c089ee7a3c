"""Who is in a task: its member list travels with it, so any member carries changes for the others.

Every member keeps the whole list (device ids, who wrote each record and when) and sends it at each
meeting; lists merge record by record, the greater :meth:`Member.order` winning: a higher ``seq``, and at
equal ``seq`` a removal. So a removal is never undone by an older list passed around (a Syncthing pitfall:
introducers re-adding removed devices); only a new share, written with ``seq + 1``, brings a device back.
Who counts in is worked out from the merged list alone (``store.members.live_set``), so devices with the
same list agree whatever order they learned it in.

What a peer may say (docs/sync.md, "Members"):
- a list is taken from a device of the list (a removed one too: what it wrote after its removal does not
  count), or from a device never heard of that the list counts in on another device's word;
- a device's word about itself is not taken once it is known (a removed device cannot bring itself back);
- nothing is sent to a member until its own list counts this device in (``confirmed``), so a member
  cannot make this device send a task to a device of its choosing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from ..device_ids import short_id_text
from ..errors import ChangeRefused
from ..store import Store
from ..store.index import find_task, queue_announce_all
from ..store.members import (
    IMPLICIT_AT,
    ME,
    Member,
    live_set,
    now_s,
    read_members,
    refresh_task_links,
    set_confirmed,
    tasks_with_member,
    wire_record,
    write_member,
)
from ..store.settings_kv import DEPARTURES, get_setting, set_setting
from ..store.tables import SyncTask
from .messages import Members

log = logging.getLogger(__name__)
MAX_MEMBERS = 256
_MAX_INT = 2**53 - 1


def _hex64(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def parse_record(raw: Any) -> Member:
    """A member record from the wire; ChangeRefused when it is not one."""
    if not isinstance(raw, dict) or set(raw) != {"device_id", "seq", "removed", "by", "at"}:
        raise ChangeRefused("a member record has exactly device_id, seq, removed, by and at")
    if not (_hex64(raw["device_id"]) and _hex64(raw["by"])):
        raise ChangeRefused("member records name devices by their 64-hex-digit id")
    if type(raw["seq"]) is not int or not 0 <= raw["seq"] <= _MAX_INT or type(raw["removed"]) is not bool \
            or type(raw["at"]) is not int or not 0 <= raw["at"] <= _MAX_INT:
        raise ChangeRefused("a member record's seq and at are integers from 0 to 2^53-1, removed a boolean")
    return Member(raw["device_id"], raw["seq"], raw["removed"], raw["by"], raw["at"])


def digest(records: list[dict[str, Any]]) -> str:
    """A short digest of a list (sessions send a list again only when it changed)."""
    return hashlib.sha256(json.dumps(sorted(records, key=lambda r: r["device_id"])).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class MemberView:
    """A member of a task as ``ecosys status`` shows it."""

    device_id: str
    removed: bool
    added_by: str
    changed_at: int
    confirmed: bool


class Membership:
    """The member lists of this device's tasks: what to send each peer, and merging what peers send."""

    def __init__(self, store: Store, device_id: str, lock: threading.RLock) -> None:
        self.store = store
        self.me = device_id
        self._lock = lock

    # -- ids as stored ("" is this device) ↔ ids on the wire ------------------------------------
    def _out(self, device_id: str) -> str:
        return self.me if device_id == ME else device_id

    def _in(self, device_id: str) -> str:
        return ME if device_id == self.me else device_id

    def _wire_list(self, session: Any, task_id: int) -> dict[str, Member]:
        """The task's records with real ids, this device included (a member since creation if unrecorded)."""
        out = {self.me: Member(self.me, 0, False, self.me, IMPLICIT_AT)}
        for device_id, stored in read_members(session, task_id).items():
            m = stored.member
            out[self._out(device_id)] = Member(self._out(device_id), m.seq, m.removed, self._out(m.added_by),
                                               m.changed_at)
        return out

    # -- what to send ---------------------------------------------------------------------------
    def message(self, secure_id: str) -> Members | None:
        """The task's member list as a MEMBERS message (None when this device has no such task)."""
        with self._lock, self.store.session() as session:
            task = find_task(session, secure_id)
            if task is None:
                return None
            return Members(secure_id, [wire_record(m) for m in self._wire_list(session, task.id).values()])

    def invitation(self, secure_id: str, peer: str) -> list[dict[str, Any]]:
        """The task's list as a share to ``peer`` carries it: with ``peer`` in it (written for good when
        it accepts)."""
        with self._lock, self.store.session() as session:
            task = find_task(session, secure_id)
            records = self._wire_list(session, task.id) if task is not None else {}
        old = records.get(peer)
        if peer not in live_set(records):
            records[peer] = Member(peer, old.seq + 1 if old is not None else 0, False, self.me, now_s())
        return [wire_record(m) for m in records.values()]

    def view(self, secure_id: str) -> list[MemberView]:
        """Every member of the task (removed ones too), this device first."""
        with self.store.session() as session:
            task = find_task(session, secure_id)
            if task is None:
                return []
            stored = read_members(session, task.id)
            records = self._wire_list(session, task.id)
        confirmed = {self._out(d): s.confirmed for d, s in stored.items()}
        live = live_set(records)
        return [MemberView(m.device_id, m.device_id not in live, m.added_by, m.changed_at,
                           confirmed.get(m.device_id, True))
                for m in sorted(records.values(), key=lambda m: (m.device_id != self.me, m.device_id))]

    def for_peer(self, peer: str) -> list[Members]:
        """The lists to send ``peer``: of every task whose list names it, and of tasks this device left
        that it has not told ``peer`` about yet (those are sent once)."""
        with self._lock, self.store.session() as session:
            out = []
            for task_id in tasks_with_member(session, peer):
                task = session.get(SyncTask, task_id)
                if task is not None:
                    out.append(Members(task.secure_id, [wire_record(m) for m in self._wire_list(session, task_id).values()]))
            departures = json.loads(get_setting(self.store, DEPARTURES) or "{}")
            told = False
            for secure_id, left in departures.items():
                if peer in left["to"]:
                    out.append(Members(secure_id, [{**r, "device_id": self._out(r["device_id"]), "by": self._out(r["by"])}
                                                   for r in left["members"]]))
                    left["to"].remove(peer)
                    told = True
            if told:
                set_setting(self.store, DEPARTURES, json.dumps({k: v for k, v in departures.items() if v["to"]}))
            return out

    def remind_departure(self, secure_id: str, peer: str) -> bool:
        """``peer`` still takes this device for a member of a task it left: tell it (again) at the next
        meeting. False when this device never left such a task."""
        with self._lock:
            departures = json.loads(get_setting(self.store, DEPARTURES) or "{}")
            left = departures.get(secure_id)
            if left is None:
                return False
            if peer not in left["to"]:
                left["to"].append(peer)
                set_setting(self.store, DEPARTURES, json.dumps(departures))
            return True

    # -- receiving ------------------------------------------------------------------------------
    def receive(self, peer: str, message: Members, *, invited: bool = False) -> bool:
        """Merge ``peer``'s list of a task into ours; True when ours changed. ``invited``: the list came
        with a share this device accepted from ``peer`` (it is trusted as a member then). ChangeRefused,
        with nothing changed, for a list from a device that is not a member, or a malformed one."""
        raw = message.members
        if not isinstance(raw, list) or not 0 < len(raw) <= MAX_MEMBERS:
            raise ChangeRefused(f"a member list has 1 to {MAX_MEMBERS} records")
        incoming: dict[str, Member] = {}
        for item in raw:
            record = parse_record(item)
            if record.device_id in incoming:
                raise ChangeRefused(f"device {short_id_text(record.device_id)} is listed twice")
            incoming[record.device_id] = record
        with self._lock, self.store.session() as session:
            task = find_task(session, message.secure_id)
            if task is None:
                if self.remind_departure(message.secure_id, peer):
                    return False  # this device left the task; the peer learns it from our departure
                mine = incoming.get(self.me)
                if mine is not None and self.me in live_set(incoming):
                    # The peer counts in a device that holds no such task (it left before the peer knew
                    # of it, and its departure went to others): it says so again, above what it was told.
                    self._depart_again(message.secure_id, peer, mine)
                    return False
                raise ChangeRefused(f"no task {message.secure_id[:12]}… here")
            current = self._wire_list(session, task.id)
            counts_me = self.me in live_set(incoming)  # the peer's list counts this device in
            if not invited and peer in current and not incoming.get(peer, Member(peer, 0, True, peer, 0)).removed:
                # A device's word about itself is not taken once it is known here (a removed device
                # saying it was shared again): that comes from the device that shared it.
                incoming.pop(peer)
            merged = dict(current)
            for record in incoming.values():
                old = merged.get(record.device_id)
                if old is None or record.order() > old.order():
                    merged[record.device_id] = record
            if not invited:
                self._check_sender(peer, current, merged)
            if len(merged) > MAX_MEMBERS:
                raise ChangeRefused(f"a task has at most {MAX_MEMBERS} members, removed ones included")
            if invited and self.me in live_set(incoming) and (self.me not in live_set(merged)
                                                             or merged.get(self.me) != incoming[self.me]):
                # The person here accepted the share: its record of this device stands over an older one
                # (written by a device since removed, or being removed unbeknown to this device).
                mine = incoming[self.me]
                merged[self.me] = Member(self.me, max(merged[self.me].seq, mine.seq) + 1, False, mine.added_by,
                                         mine.changed_at)
            changed = False
            for device_id, record in merged.items():
                if current.get(device_id) != record:
                    write_member(session, task.id, Member(self._in(record.device_id), record.seq, record.removed,
                                                          self._in(record.added_by), record.changed_at))
                    changed = True
            # Sending starts once the peer's own list counts this device in, and stops when it no longer
            # does (it knows of a removal this device does not accept, say): neither side then sends
            # what the other would refuse.
            newly = set_confirmed(session, task.id, peer, counts_me)
            if changed or newly:
                self._relink(session, task.id)
                self.store.touch()
            if changed:
                log.info("members of task %s changed (list from %s)", task.info.name, short_id_text(peer))
            return changed

    def _depart_again(self, secure_id: str, peer: str, mine: Member) -> None:
        """Owe ``peer`` a departure from task ``secure_id``: this device's removal, at a seq above the
        record ``mine`` the peer has of it (sent with the member lists at the next flush)."""
        departures = json.loads(get_setting(self.store, DEPARTURES) or "{}")
        left = departures.setdefault(secure_id, {"members": [], "to": []})
        records = [r for r in left["members"] if r["device_id"] != ME]
        records.append(wire_record(Member(ME, mine.seq + 1, True, ME, now_s())))
        left["members"] = records
        if peer not in left["to"]:
            left["to"].append(peer)
        set_setting(self.store, DEPARTURES, json.dumps(departures))

    def _check_sender(self, peer: str, current: dict[str, Member], merged: dict[str, Member]) -> None:
        """A list is taken from a device of the list, removed ones too (its records are judged by
        :func:`live_set`: what it wrote after its removal does not count), or from a device this one
        never heard of that the merged list counts in on another device's word (it may arrive before
        the list of the member that added it)."""
        if peer in current or (peer in live_set(merged) and merged[peer].added_by != peer):
            return
        raise ChangeRefused(f"device {short_id_text(peer)} is not a member of this task here")

    def _relink(self, session: Any, task_id: int) -> None:
        gained, _ = refresh_task_links(session, task_id)
        for device_id in gained:  # a member newly reachable here: announce every path (it may have them)
            queue_announce_all(session, task_id, device_id)

    # -- changes made here ---------------------------------------------------------------------
    def remove(self, secure_id: str, device_id: str) -> bool:
        """Remove ``device_id`` from the task's members (a tombstone the others learn); False when it
        was not a member."""
        with self._lock, self.store.session() as session:
            task = find_task(session, secure_id)
            if task is None:
                return False
            current = self._wire_list(session, task.id)
            old = current.get(device_id)
            if old is None or device_id not in live_set(current):
                return False
            write_member(session, task.id, Member(self._in(device_id), old.seq + 1, True, ME, now_s()))
            self._relink(session, task.id)
            self.store.touch()
            return True

    def was_removed(self, secure_id: str, device_id: str) -> bool:
        """True when the task's list here says ``device_id`` was removed (a share from it then does not
        bring it back: only a share made here does)."""
        return any(v.device_id == device_id and v.removed for v in self.view(secure_id))

    def live_members(self, secure_id: str) -> list[str]:
        """The device ids of the task's live members, this device excluded."""
        return [v.device_id for v in self.view(secure_id) if not v.removed and v.device_id != self.me]
