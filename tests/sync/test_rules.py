"""The sync rules as pure functions, property-tested without a disk: every device decides alike."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ecosys_core.store.index import Entry
from ecosys_core.store.versions import Order, compare
from ecosys_core.sync.rules import Action, conflict_name, decide, winner_key

DEVICES = ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"]
versions = st.dictionaries(st.sampled_from(DEVICES), st.integers(1, 4), min_size=1)


@st.composite
def entries(draw: st.DrawFn, path: str = "dir/notes.txt") -> Entry:
    deleted = draw(st.booleans())
    return Entry(path, draw(versions), "" if deleted else draw(st.sampled_from(["h1" * 16, "h2" * 16, "h3" * 16])),
                 0 if deleted else draw(st.integers(1, 100)), 0, draw(st.integers(0, 3)) * 10**9,
                 draw(st.sampled_from(DEVICES)), deleted)


def at_path(decision_action: Action, local: Entry, remote: Entry) -> Entry | None:
    """The version that stays at the path after the decision (None: up to date, nothing moves)."""
    if decision_action in (Action.TAKE_REMOTE, Action.CONFLICT_REMOTE_WINS):
        return remote
    if decision_action in (Action.KEEP_LOCAL, Action.CONFLICT_LOCAL_WINS):
        return local
    return None


@given(entries(), entries())
def test_two_devices_deciding_on_each_others_version_keep_the_same_content(a: Entry, b: Entry):
    on_a, on_b = decide(a, b), decide(b, a)
    if compare(a.version, b.version) is not Order.CONCURRENT:
        return
    kept_a, kept_b = at_path(on_a.action, a, b), at_path(on_b.action, b, a)
    assert (kept_a.hash, kept_a.deleted) == (kept_b.hash, kept_b.deleted)
    assert on_a.version == on_b.version
    assert on_a.conflict_names == on_b.conflict_names  # both name the loser's copy alike


@given(entries(), entries())
def test_the_version_after_a_decision_dominates_both(local: Entry, remote: Entry):
    decision = decide(local, remote)
    for version in (local.version, remote.version):
        assert compare(decision.version, version) in (Order.EQUAL, Order.NEWER)


@given(entries(), entries())
def test_a_remote_version_we_dominate_changes_nothing(local: Entry, remote: Entry):
    if compare(remote.version, local.version) in (Order.EQUAL, Order.OLDER):
        decision = decide(local, remote)
        assert decision.action is Action.UP_TO_DATE and decision.version == local.version


@given(entries(), entries())
def test_a_newer_remote_version_is_taken_and_not_sent_back(local: Entry, remote: Entry):
    if compare(remote.version, local.version) is Order.NEWER:
        decision = decide(local, remote)
        assert decision.action is Action.TAKE_REMOTE and decision.version == remote.version
        assert not decision.relay_to_peer


@given(entries(), entries())
def test_a_conflict_keeps_a_copy_of_the_loser_and_never_of_a_deletion(local: Entry, remote: Entry):
    decision = decide(local, remote)
    if decision.action in (Action.CONFLICT_REMOTE_WINS, Action.CONFLICT_LOCAL_WINS):
        assert decision.loser is not None and not decision.loser.deleted
        assert decision.loser.hash != (remote if decision.loser is local else local).hash
        assert decision.relay_to_peer
        winner = remote if decision.action is Action.CONFLICT_REMOTE_WINS else local
        assert winner_key(winner) > winner_key(decision.loser)
    else:
        assert decision.conflict_names == ()


@given(versions, versions)
def test_equal_content_is_merged_without_a_conflict(v1: dict, v2: dict):
    local = Entry("a.txt", v1, "h" * 32, 5, 0, 10, DEVICES[0], False)
    remote = Entry("a.txt", v2, "h" * 32, 5, 0, 20, DEVICES[1], False)
    if compare(v2, v1) is Order.CONCURRENT:
        decision = decide(local, remote)
        assert decision.action is Action.TAKE_REMOTE and decision.relay_to_peer and decision.loser is None


def test_a_modification_beats_a_concurrent_deletion():
    edited = Entry("a.txt", {DEVICES[0]: 2}, "h" * 32, 5, 0, 1, DEVICES[0], False)
    deleted = Entry("a.txt", {DEVICES[1]: 2}, "", 0, 0, 9 * 10**9, DEVICES[1], True)
    assert decide(edited, deleted).action is Action.KEEP_LOCAL
    assert decide(deleted, edited).action is Action.TAKE_REMOTE


def test_in_backup_mode_a_missing_file_counts_as_deleted():
    kept = Entry("a.txt", {DEVICES[0]: 1}, "h" * 32, 5, 0, 1, DEVICES[0], False)
    newer_elsewhere = Entry("a.txt", {DEVICES[1]: 1}, "g" * 32, 5, 0, 0, DEVICES[1], False)
    assert decide(kept, newer_elsewhere, backup_mode=True, present=False).action is Action.TAKE_REMOTE
    assert decide(kept, newer_elsewhere, backup_mode=True, present=True).action is Action.CONFLICT_LOCAL_WINS


def test_conflict_names_say_the_losers_device_and_second_then_its_hash():
    loser = Entry("dir/report.final.txt", {DEVICES[0]: 1}, "abcdef0123" * 6 + "abcd", 5, 0,
                  1_767_225_600 * 10**9, DEVICES[0], False)
    winner = Entry("dir/report.final.txt", {DEVICES[1]: 1}, "f" * 64, 5, 0, 1_767_225_601 * 10**9, DEVICES[1], False)
    names = decide(loser, winner).conflict_names
    assert names[0] == "dir/report.final.sync-conflict-20260101-000000-AAAAAAA.txt"
    assert names[1] == "dir/report.final.sync-conflict-20260101-000000-AAAAAAA-ABCDEF01.txt"
    assert names[2].endswith(f"-{loser.hash.upper()}.txt")
    assert conflict_name("README", 0, "bbbbbbb") == "README.sync-conflict-19700101-000000-BBBBBBB"
