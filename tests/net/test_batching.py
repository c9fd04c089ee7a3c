"""What the session hands to the engine in one call: an inline delta (already whole, a list holding the
frame's payload) never ends a batch; a delta still arriving in DATA frames does. Until this was checked,
every inline delta ended its batch, so the receiver applied 2,000 small files one engine call each."""

from __future__ import annotations

from ecosys_core.net.codec import header_message, message_header
from ecosys_core.net.session import _streamed
from ecosys_core.sync.messages import Modification, ModificationDone


def modification(delta) -> Modification:
    return Modification("task", "a.txt", {"dev": 1}, "h" * 64, 3, 0, "dev", False, "", delta, False)


def test_only_a_delta_still_arriving_ends_a_batch():
    received = header_message(*message_header(modification(b"abc"), "dev"))  # an inline delta, decoded
    assert received.delta == [b"abc"] and not _streamed(received)
    assert not _streamed(modification(None))
    assert not _streamed(ModificationDone("task", "a.txt", {"dev": 1}))
    assert _streamed(modification(iter([b"abc"])))
    assert _streamed(modification(block for block in [b"abc"]))
