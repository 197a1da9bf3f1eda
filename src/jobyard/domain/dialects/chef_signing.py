"""Chef's signed-header protocol (mixlib-authentication), the server's side: verification.

A Chef client signs each request with its RSA private key::

    X-Ops-Sign:          algorithm=sha1;version=1.1;   (1.3: algorithm=sha256;version=1.3)
    X-Ops-UserId:        the user or client name
    X-Ops-Timestamp:     2024-05-01T12:00:00Z
    X-Ops-Content-Hash:  base64(digest(body))
    X-Ops-Authorization-1 .. N: base64(signature), cut into lines of 60 characters

The signed text (the "canonical request") is, for versions 1.0 and 1.1::

    Method:POST
    Hashed Path:base64(sha1(path))
    X-Ops-Content-Hash:...
    X-Ops-Timestamp:2024-05-01T12:00:00Z
    X-Ops-UserId:name            (1.1: base64(sha1(name)))

signed with a raw PKCS#1 v1.5 private-key encryption (no DigestInfo); and for 1.3::

    Method:POST
    Path:/organizations/acme/pushy/jobs
    X-Ops-Content-Hash:...       (SHA-256)
    X-Ops-Sign:version=1.3
    X-Ops-Timestamp:...
    X-Ops-UserId:name
    X-Ops-Server-API-Version:0   (the request's header, else 0)

signed as an RSA PKCS#1 v1.5 SHA-256 signature. The path is the URL path only (no query
string) with repeated slashes collapsed and a trailing slash removed. A request is
accepted when its timestamp is within 15 minutes of the server's clock, its content
hash is the body's, and the signature verifies with the public key registered for the
user id. The RSA arithmetic is the ``cryptography`` package's.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jobyard.domain.errors import Invalid, Unauthenticated

# The clock allowance of Chef servers (chef_authn's default skew): 15 minutes either way.
ALLOWED_SKEW = dt.timedelta(minutes=15)
ALGORITHM_FOR_VERSION = {"1.0": "sha1", "1.1": "sha1", "1.3": "sha256"}
# What a 401 tells the client it may use (the WWW-Authenticate header).
CHALLENGE = 'X-Ops-Sign version="1.0" version="1.1" version="1.3"'
MANDATORY = ("x-ops-sign", "x-ops-userid", "x-ops-timestamp", "x-ops-content-hash")
_AUTH_LINE = re.compile(r"^x-ops-authorization-([0-9]{1,4})$")
_MIN_KEY_BITS = 2048
_MAX_KEY_BITS = 16384


@dataclass(frozen=True)
class Signature:
    """The signing headers of one request, parsed."""

    version: str
    algorithm: str
    user_id: str
    timestamp: str
    content_hash: str
    signature: bytes
    server_api_version: str


def is_signed(headers: Mapping[str, str]) -> bool:
    """Whether a request means to use Chef signing (any of its headers is present)."""
    return any(h in headers for h in (*MANDATORY, "x-ops-authorization-1"))


def parse(headers: Mapping[str, str]) -> Signature:
    """The signing headers (lower-case names), or Unauthenticated saying what is missing.

    An unknown protocol version is Invalid (400), as Chef servers answer it.
    """
    missing = [h for h in MANDATORY if not headers.get(h, "").strip()]
    lines = sorted(
        (int(m.group(1)), value.strip())
        for name, value in headers.items()
        if (m := _AUTH_LINE.match(name))
    )
    if not lines:
        missing.append("x-ops-authorization-1")
    if missing:
        named = ", ".join(f"'{h.upper()}'" for h in missing)
        raise Unauthenticated(f"missing required authentication header(s) {named}")
    if [n for n, _ in lines] != list(range(1, len(lines) + 1)):
        raise Unauthenticated("bad header(s) 'X-Ops-Authorization-N': not numbered 1, 2, 3 ...")
    fields = _description(headers["x-ops-sign"])
    version = fields.get("version", "")
    if version not in ALGORITHM_FOR_VERSION:
        raise Invalid("Unsupported authentication protocol version", "X-Ops-Sign")
    algorithm = fields.get("algorithm", ALGORITHM_FOR_VERSION[version])
    if algorithm != ALGORITHM_FOR_VERSION[version]:
        raise Invalid(f"Unsupported algorithm {algorithm} for version '{version}'", "X-Ops-Sign")
    try:
        signature = base64.b64decode("".join(v for _, v in lines), validate=True)
    except (binascii.Error, ValueError):
        raise Unauthenticated("bad header(s) 'X-Ops-Authorization-N': not base64") from None
    return Signature(
        version=version,
        algorithm=algorithm,
        user_id=headers["x-ops-userid"].strip(),
        timestamp=headers["x-ops-timestamp"].strip(),
        content_hash=headers["x-ops-content-hash"].strip(),
        signature=signature,
        server_api_version=(headers.get("x-ops-server-api-version") or "0").strip(),
    )


def _description(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in value.strip().split(";"):
        name, _, val = part.partition("=")
        if name.strip():
            out[name.strip()] = val.strip()
    return out


def canonical_time(timestamp: str) -> dt.datetime:
    """The signed timestamp as a UTC time; Unauthenticated when it is not ISO 8601."""
    try:
        when = dt.datetime.fromisoformat(timestamp.replace("z", "Z"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.astimezone(dt.UTC).replace(microsecond=0)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 in another zone
        raise Unauthenticated("bad header(s) 'X-Ops-Timestamp': not an ISO 8601 time") from None


def canonical_path(path: str) -> str:
    collapsed = re.sub("/+", "/", path.split("?", 1)[0])
    return collapsed.rstrip("/") if len(collapsed) > 1 else collapsed


def _digest(version: str, data: bytes) -> str:
    name = ALGORITHM_FOR_VERSION[version]
    return base64.b64encode(hashlib.new(name, data).digest()).decode()


def content_hash(version: str, body: bytes) -> str:
    return _digest(version, body)


def canonical_request(sig: Signature, method: str, path: str) -> bytes:
    """The text the client signed, rebuilt from what the server received."""
    stamp = canonical_time(sig.timestamp).strftime("%Y-%m-%dT%H:%M:%SZ")
    canon = canonical_path(path)
    if sig.version == "1.3":
        lines = [
            f"Method:{method.upper()}",
            f"Path:{canon}",
            f"X-Ops-Content-Hash:{sig.content_hash}",
            "X-Ops-Sign:version=1.3",
            f"X-Ops-Timestamp:{stamp}",
            f"X-Ops-UserId:{sig.user_id}",
            f"X-Ops-Server-API-Version:{sig.server_api_version}",
        ]
    else:
        user = sig.user_id if sig.version == "1.0" else _digest("1.1", sig.user_id.encode())
        lines = [
            f"Method:{method.upper()}",
            f"Hashed Path:{_digest(sig.version, canon.encode())}",
            f"X-Ops-Content-Hash:{sig.content_hash}",
            f"X-Ops-Timestamp:{stamp}",
            f"X-Ops-UserId:{user}",
        ]
    return "\n".join(lines).encode()


def load_public_key(pem: str) -> rsa.RSAPublicKey:
    """An RSA public key from PEM (SPKI or PKCS#1), or Invalid saying what is wrong.

    A certificate is not accepted: Chef 12 and later keep bare public keys.
    """
    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError, UnicodeEncodeError):
        raise Invalid(
            "public_key must be an RSA public key in PEM form ('-----BEGIN PUBLIC KEY-----' ...)",
            "public_key",
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise Invalid("public_key must be an RSA key (Chef signs with RSA)", "public_key")
    if not _MIN_KEY_BITS <= key.key_size <= _MAX_KEY_BITS:
        raise Invalid(
            f"public_key has {key.key_size} bits: use {_MIN_KEY_BITS} to {_MAX_KEY_BITS}",
            "public_key",
        )
    return key


def public_pem(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def new_key_pair() -> tuple[str, str]:
    """A fresh 2048-bit key pair as Chef makes them: (private PEM, PKCS#1; public PEM)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return private_pem, public_pem(private.public_key())


def verify(
    key: rsa.RSAPublicKey,
    sig: Signature,
    *,
    method: str,
    path: str,
    body: bytes,
    now: dt.datetime,
) -> None:
    """Check one signed request; Unauthenticated with Chef's words when it does not hold."""
    if abs(now - canonical_time(sig.timestamp)) >= ALLOWED_SKEW:
        raise Unauthenticated(
            f"Failed to authenticate as {sig.user_id}. Synchronize the clock on your host."
        )
    if sig.content_hash != content_hash(sig.version, body):
        raise Unauthenticated(f"Invalid signature for user or client '{sig.user_id}'")
    expected = canonical_request(sig, method, path)
    if not _signature_holds(key, sig, expected):
        raise Unauthenticated(f"Invalid signature for user or client '{sig.user_id}'")


def _signature_holds(key: rsa.RSAPublicKey, sig: Signature, expected: bytes) -> bool:
    try:
        if sig.version == "1.3":
            key.verify(sig.signature, expected, padding.PKCS1v15(), hashes.SHA256())
            return True
        # 1.0 and 1.1: the client "encrypted" the text itself with its private key
        # (OpenSSL's RSA_private_encrypt, PKCS#1 v1.5 type 1 padding, no digest).
        recovered = key.recover_data_from_signature(sig.signature, padding.PKCS1v15(), None)
    except (InvalidSignature, ValueError):
        return False
    return recovered == expected
