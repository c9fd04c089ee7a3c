"""Version vectors: ``{device short id: counter}``. A local change increments this device's counter."""

from __future__ import annotations

import enum
from typing import Mapping

Version = dict[str, int]


class Order(enum.Enum):
    """How two versions relate."""

    EQUAL = "equal"
    NEWER = "newer"  # the first dominates the second
    OLDER = "older"  # the second dominates the first
    CONCURRENT = "concurrent"


def compare(a: Mapping[str, int], b: Mapping[str, int]) -> Order:
    """Compare version ``a`` with ``b``."""
    a_bigger = b_bigger = False
    for key in set(a) | set(b):
        x, y = a.get(key, 0), b.get(key, 0)
        if x > y:
            a_bigger = True
        elif y > x:
            b_bigger = True
    if a_bigger and b_bigger:
        return Order.CONCURRENT
    if a_bigger:
        return Order.NEWER
    if b_bigger:
        return Order.OLDER
    return Order.EQUAL


def dominates_or_equal(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    """True when ``a`` already contains everything ``b`` knows."""
    return compare(a, b) in (Order.EQUAL, Order.NEWER)


def merge(a: Mapping[str, int], b: Mapping[str, int]) -> Version:
    """The least version that dominates both."""
    return {key: max(a.get(key, 0), b.get(key, 0)) for key in sorted(set(a) | set(b))}


def bump(version: Mapping[str, int], device: str) -> Version:
    """``version`` with ``device``'s counter incremented (a local change)."""
    out = dict(version)
    out[device] = out.get(device, 0) + 1
    return dict(sorted(out.items()))
