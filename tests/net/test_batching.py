"""What the session hands to the engine in one call: an inline delta (already whole, a list holding the
frame's payload) never ends a batch; a delta still arriving in DATA frames does. Until this was checked,
every inline delta ended its batch, so the receiver applied 2,000 small files one engine call each."""

from __future__ import annotations

from ecosys_core.net.codec import header_message, message_header
from ecosys_core.sync.messages import Modification, ModificationDone, is_streaming


def modification(delta) -> Modification:
    return Modification("task", "a.txt", {"dev": 1}, "h" * 64, 3, 0, "dev", False, "", delta, False)


def test_only_a_delta_still_arriving_ends_a_batch():
    received = header_message(*message_header(modification(b"abc"), "dev"))  # an inline delta, decoded
    assert received.delta == [b"abc"] and not is_streaming(received)
    assert not is_streaming(modification(None))
    assert not is_streaming(ModificationDone("task", "a.txt", {"dev": 1}))
    assert is_streaming(modification(iter([b"abc"])))
    assert is_streaming(modification(block for block in [b"abc"]))
