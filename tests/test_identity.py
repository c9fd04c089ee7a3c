"""Device identity: a self-signed certificate, its SHA-256 as device_id, a readable checked form."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ecosys_core.errors import EcosysError
from ecosys_core.net.identity import load_or_create_identity, parse_device_id, readable_id


def test_identity_is_created_once_with_a_private_key(tmp_path: Path):
    first = load_or_create_identity(tmp_path / "identity")
    again = load_or_create_identity(tmp_path / "identity")
    assert first.device_id == again.device_id and len(first.device_id) == 64
    cert = x509.load_pem_x509_certificate(first.cert_path.read_bytes())
    assert hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest() == first.device_id
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600


def test_readable_form_round_trips_and_catches_typos():
    device_id = hashlib.sha256(b"x").hexdigest()
    text = readable_id(device_id)
    assert len(text) == 63 and text.count("-") == 7
    assert parse_device_id(text) == device_id
    assert parse_device_id(text.lower().replace("-", " ")) == device_id
    assert parse_device_id(device_id.upper()) == device_id
    typo = ("B" if text[3] != "B" else "C").join([text[:3], text[4:]])
    with pytest.raises(EcosysError, match="check character"):
        parse_device_id(typo)
    with pytest.raises(EcosysError, match="not a device id"):
        parse_device_id("hello")


def test_id_command_prints_the_readable_id(run_cli, ecosys_home):
    readable = run_cli("id").output.strip()
    assert parse_device_id(readable) == run_cli("id", "--hex").output.strip()


def test_a_damaged_certificate_is_named_and_left_as_it_is(tmp_path: Path):
    load_or_create_identity(tmp_path)
    (tmp_path / "cert.pem").write_text("garbage")
    key_before = (tmp_path / "key.pem").read_bytes()
    with pytest.raises(EcosysError, match=r"cert\.pem: not a certificate"):
        load_or_create_identity(tmp_path)
    assert (tmp_path / "cert.pem").read_text() == "garbage" and (tmp_path / "key.pem").read_bytes() == key_before
