"""Device ids as people see them: 56 base32 characters in 8 groups of 7, with a Luhn mod-32 check
character after every 13 (Syncthing's format), so a mistyped id is caught rather than trusted. The
64-hex form is what the wire and the store use."""

from __future__ import annotations

import base64

from .errors import EcosysError

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _luhn32(text: str) -> str:
    factor, total = 1, 0
    for ch in text:
        addend = factor * _ALPHABET.index(ch)
        factor = 1 if factor == 2 else 2
        total += addend // 32 + addend % 32
    return _ALPHABET[(32 - total % 32) % 32]


def readable_id(device_id: str) -> str:
    """``ABCDEFG-HIJKLMN-…`` form of a hex device_id (8 groups of 7, check characters included)."""
    raw = base64.b32encode(bytes.fromhex(device_id)).decode().rstrip("=")
    blocks = [raw[i: i + 13] for i in range(0, 52, 13)]
    with_checks = "".join(block + _luhn32(block) for block in blocks)
    return "-".join(with_checks[i: i + 7] for i in range(0, 56, 7))


def parse_device_id(text: str) -> str:
    """Accept a readable id (dashes/spaces optional, any case) or 64 hex digits; return hex.
    Raise EcosysError naming the problem (bad length, bad character, wrong check character)."""
    cleaned = text.strip().replace("-", "").replace(" ", "")
    if len(cleaned) == 64 and all(c in "0123456789abcdefABCDEF" for c in cleaned):
        return cleaned.lower()
    cleaned = cleaned.upper()
    if len(cleaned) != 56 or any(c not in _ALPHABET for c in cleaned):
        raise EcosysError(f"not a device id: {text!r} (expected 8 groups of 7 letters and digits)")
    blocks = [cleaned[i: i + 14] for i in range(0, 56, 14)]
    for block in blocks:
        if _luhn32(block[:13]) != block[13]:
            raise EcosysError(f"device id {text!r} has a wrong check character (mistyped?)")
    raw = "".join(block[:13] for block in blocks) + "===="
    return base64.b32decode(raw).hex()


def short_id_text(device_id: str) -> str:
    """The first group of the readable id (``ABCDEFG``), to tell devices apart in logs and lists."""
    return readable_id(device_id)[:7]


def printable(name: str) -> str:
    """``name`` without control or other unprintable characters, so a name a device chose cannot drive
    the terminal it is shown in."""
    return "".join(ch for ch in name if ch.isprintable())
