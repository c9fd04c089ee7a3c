"""How many questions other devices may have put to the person at once. Each waits for a person, so
a device must not be able to pile them up: at most one at a time from a device that is not linked,
a few from a linked one, and a bounded number overall; a new one past those is refused at once (the
asking device is told the person is busy), never queued."""

from __future__ import annotations

from collections import Counter

PER_UNLINKED = 1
PER_LINKED = 4
OVERALL = 16


class PendingQuestions:
    """Counts of the questions waiting for the person, per asking device."""

    def __init__(self, per_unlinked: int = PER_UNLINKED, per_linked: int = PER_LINKED, overall: int = OVERALL) -> None:
        self.per_unlinked, self.per_linked, self.overall = per_unlinked, per_linked, overall
        self._by_device: Counter[str] = Counter()

    def begin(self, device_id: str, linked: bool) -> bool:
        """Count one more question from ``device_id``; False (nothing counted) when over a limit."""
        limit = self.per_linked if linked else self.per_unlinked
        if self._by_device[device_id] >= limit or sum(self._by_device.values()) >= self.overall:
            return False
        self._by_device[device_id] += 1
        return True

    def end(self, device_id: str) -> None:
        """The question from ``device_id`` was answered, expired or cancelled."""
        self._by_device[device_id] -= 1
        if self._by_device[device_id] <= 0:
            del self._by_device[device_id]

    def waiting(self) -> int:
        """Questions waiting now."""
        return sum(self._by_device.values())
