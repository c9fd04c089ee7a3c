"""This device's identity: a self-signed certificate whose SHA-256 is the 256-bit device_id.

People see the id as 56 base32 characters in 8 groups of 7, with a Luhn mod-32 check character after
every 13 (Syncthing's format), so a mistyped id is caught rather than trusted.
"""

from __future__ import annotations

import hashlib
import os
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..device_ids import (
    parse_device_id as parse_device_id,  # re-exported: the readable forms of an id
)
from ..device_ids import readable_id as readable_id
from ..errors import ConfigError


@dataclass(frozen=True)
class Identity:
    """Paths of this device's certificate and key, and its device_id (64 hex digits)."""

    cert_path: Path
    key_path: Path
    device_id: str

    @property
    def readable(self) -> str:
        return readable_id(self.device_id)


def device_id_of(cert_der: bytes) -> str:
    """The device_id of a DER certificate: its SHA-256, hex."""
    return hashlib.sha256(cert_der).hexdigest()


def cert_der(cert_path: Path) -> bytes:
    """The DER bytes of the PEM certificate at ``cert_path``; ConfigError naming the file when it holds
    none (damaged by hand or by a disk)."""
    try:
        return ssl.PEM_cert_to_DER_cert(cert_path.read_text("ascii"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(str(cert_path), None, f"not a certificate ({exc}); move the identity folder away to "
                          "make a new identity (linked devices must then be linked again)") from None


def load_or_create_identity(folder: Path, name: str = "ecosys") -> Identity:
    """Load the identity in ``folder`` or create it (ECDSA P-256 key, readable only by the owner)."""
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if cert_path.exists() and key_path.exists():
        return Identity(cert_path, key_path, device_id_of(cert_der(cert_path)))
    # Only a new identity needs the cryptography package (7.6 MiB resident once imported)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64] or "ecosys")])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365 * 20))
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Identity(cert_path, key_path, device_id_of(cert.public_bytes(serialization.Encoding.DER)))
