"""The lab's certificate authority: made once per lab run under the run dir, it signs each simulated
device's HTTPS certificate for that device's address (as a real NVR serves ISAPI on 443 with its
own certificate). The control node verifies against the CA certificate (N8); keys are 0600 files.

A lab CA is no PKI: it lives and dies with the run dir (`hazmon lab down` removes it), and it
vouches only for 198.18.0.0/15 lab addresses (or loopback, in tests).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hazmon.lab.services import write_private

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
VALID_DAYS = 365  # longer than any lab run; the run dir goes with `down`


@dataclass(frozen=True)
class LabCa:
    cert: Path  # what clients trust (nvr_isapi_ca_file)
    key: Path  # 0600


@dataclass(frozen=True)
class DeviceCert:
    cert: Path
    key: Path  # 0600


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return builder.not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=VALID_DAYS))


def ensure_ca(directory: Path, name: str = "hazmon lab CA") -> LabCa:
    """The CA in `directory`, made the first time (a run's CA is kept: running devices' certificates
    were signed by it)."""
    ca = LabCa(directory / CA_CERT, directory / CA_KEY)
    if ca.cert.exists() and ca.key.exists():
        return ca
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _validity(x509.CertificateBuilder())
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(ca.key, _key_pem(key))
    ca.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ca


def issue(ca: LabCa, address: str, cert: Path, key: Path, name: str | None = None) -> DeviceCert:
    """A server certificate for a device at `address` (its IP in subjectAltName), signed by the CA."""
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca.key}: not the lab CA's key (an EC key)")
    device_key = ec.generate_private_key(ec.SECP256R1())
    built = (
        _validity(x509.CertificateBuilder())
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name or address)]))
        .issuer_name(ca_cert.subject)
        .public_key(device_key.public_key()).serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(device_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_private(key, _key_pem(device_key))
    cert.parent.mkdir(parents=True, exist_ok=True)
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    return DeviceCert(cert, key)
