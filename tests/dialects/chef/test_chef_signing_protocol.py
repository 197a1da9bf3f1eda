"""Chef's signed-header protocol (mixlib-authentication), verified for versions 1.0, 1.1, 1.3.

Two independent sources: the fixed vectors of mixlib's own specs (Ruby, what knife uses),
and requests signed by chefsessionlib (a Python client from PyPI), which are then
tampered with one part at a time.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jobyard.domain.dialects import chef_signing as cs
from jobyard.domain.errors import Invalid, Unauthenticated
from tests.dialects.chef.signer import (
    MIXLIB_BODY,
    MIXLIB_PATH,
    MIXLIB_PUBLIC_KEY,
    MIXLIB_TIME,
    mixlib_headers,
    signed_headers,
)

VERSIONS = ["1.0", "1.1", "1.3"]
MIXLIB_NOW = dt.datetime(2009, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
PRIVATE, PUBLIC = cs.new_key_pair()
KEY = cs.load_public_key(PUBLIC)
URL = "http://chef.test:8443/compat/chef/organizations/acme/pushy/jobs"
PATH = "/compat/chef/organizations/acme/pushy/jobs"
BODY = b'{"command": "chef-client", "nodes": ["web1"]}'


def check(
    headers: dict[str, str],
    *,
    method: str = "POST",
    path: str = PATH,
    body: bytes = BODY,
    now: dt.datetime | None = None,
    key: object = None,
) -> None:
    lower = {k.lower(): v for k, v in headers.items()}
    sig = cs.parse(lower)
    cs.verify(
        key or KEY,  # type: ignore[arg-type]
        sig,
        method=method,
        path=path,
        body=body,
        now=now or dt.datetime.now(dt.UTC),
    )


def fresh(version: str, *, method: str = "POST", url: str = URL, body: bytes | None = BODY) -> dict:
    return signed_headers("alice", PRIVATE, method, url, body=body, version=version)


@pytest.mark.parametrize("version", VERSIONS)
def test_mixlibs_own_vectors_verify(version: str) -> None:
    key = cs.load_public_key(MIXLIB_PUBLIC_KEY)
    headers = mixlib_headers(version)
    check(headers, path=MIXLIB_PATH, body=MIXLIB_BODY, now=MIXLIB_NOW, key=key)
    # The same request a byte different in its body, or under another path, is refused.
    with pytest.raises(Unauthenticated, match="Invalid signature"):
        check(headers, path=MIXLIB_PATH, body=MIXLIB_BODY + b"!", now=MIXLIB_NOW, key=key)
    with pytest.raises(Unauthenticated, match="Invalid signature"):
        check(headers, path=MIXLIB_PATH + "x", body=MIXLIB_BODY, now=MIXLIB_NOW, key=key)


def test_mixlib_canonical_request_for_1_3_is_byte_exact() -> None:
    sig = cs.parse(mixlib_headers("1.3"))
    assert cs.canonical_request(sig, "post", MIXLIB_PATH) == (
        b"Method:POST\nPath:/organizations/clownco\n"
        b"X-Ops-Content-Hash:hDlKNZhIhgso3Fs0S0pZwJ0xyBWtR1RBaeHs1DrzOho=\n"
        b"X-Ops-Sign:version=1.3\nX-Ops-Timestamp:" + MIXLIB_TIME.encode() + b"\n"
        b"X-Ops-UserId:spec-user\nX-Ops-Server-API-Version:1"
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_a_real_clients_requests_verify_with_and_without_a_body(version: str) -> None:
    check(fresh(version))
    check(fresh(version, method="GET", body=None), method="GET", body=b"")


@pytest.mark.parametrize("version", VERSIONS)
def test_the_query_string_is_not_part_of_the_signature(version: str) -> None:
    # Chef signs the path only: a client that adds ?include_file=true signs the same text.
    headers = fresh(version, method="GET", url=URL + "?include_file=true&x=1", body=None)
    check(headers, method="GET", body=b"")
    # Repeated and trailing slashes are canonicalized on both sides.
    check(headers, method="GET", path=PATH.replace("/pushy/", "//pushy/") + "/", body=b"")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "tamper",
    ["body", "path", "method", "user", "timestamp", "content_hash", "signature", "line_dropped"],
)
def test_any_tampering_is_refused(version: str, tamper: str) -> None:
    headers = fresh(version)
    kwargs: dict[str, object] = {}
    if tamper == "body":
        kwargs["body"] = BODY.replace(b"web1", b"web2")
    elif tamper == "path":
        kwargs["path"] = PATH.replace("acme", "acmf")
    elif tamper == "method":
        kwargs["method"] = "PUT"
    elif tamper == "user":
        headers["X-Ops-UserId"] = "mallory"
    elif tamper == "timestamp":
        stamp = dt.datetime.fromisoformat(headers["X-Ops-Timestamp"]) - dt.timedelta(seconds=1)
        headers["X-Ops-Timestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    elif tamper == "content_hash":
        kwargs["body"] = b"{}"
        headers["X-Ops-Content-Hash"] = cs.content_hash(version, b"{}")
    elif tamper == "signature":
        line = headers["X-Ops-Authorization-2"]
        headers["X-Ops-Authorization-2"] = ("A" if line[0] != "A" else "B") + line[1:]
    elif tamper == "line_dropped":
        last = max(int(k.rsplit("-", 1)[1]) for k in headers if k.startswith("X-Ops-Auth"))
        del headers[f"X-Ops-Authorization-{last}"]
    with pytest.raises(Unauthenticated):
        check(headers, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", VERSIONS)
def test_another_key_does_not_verify(version: str) -> None:
    _, other_public = cs.new_key_pair()
    with pytest.raises(Unauthenticated, match="Invalid signature for user or client 'alice'"):
        check(fresh(version), key=cs.load_public_key(other_public))


def test_the_clock_allowance_is_fifteen_minutes() -> None:
    headers = fresh("1.3")
    signed_at = cs.canonical_time(headers["X-Ops-Timestamp"])
    check(headers, now=signed_at + dt.timedelta(minutes=14, seconds=59))
    check(headers, now=signed_at - dt.timedelta(minutes=14, seconds=59))
    for skew in (dt.timedelta(minutes=15), dt.timedelta(minutes=-15), dt.timedelta(days=1)):
        with pytest.raises(Unauthenticated, match="Synchronize the clock on your host"):
            check(headers, now=signed_at + skew)


def test_missing_headers_are_named() -> None:
    headers = {k.lower(): v for k, v in fresh("1.1").items()}
    del headers["x-ops-timestamp"]
    with pytest.raises(Unauthenticated, match="'X-OPS-TIMESTAMP'"):
        cs.parse(headers)
    headers = {k: v for k, v in headers.items() if not k.startswith("x-ops-authorization")}
    headers["x-ops-timestamp"] = MIXLIB_TIME
    with pytest.raises(Unauthenticated, match="'X-OPS-AUTHORIZATION-1'"):
        cs.parse(headers)


@pytest.mark.parametrize(
    "sign", ["version=1.2", "algorithm=sha1;version=1.3", "algorithm=md5;version=1.0", ""]
)
def test_unsupported_versions_and_algorithms_are_bad_requests(sign: str) -> None:
    headers = {k.lower(): v for k, v in fresh("1.3").items()}
    headers["x-ops-sign"] = sign
    if sign:
        with pytest.raises(Invalid):
            cs.parse(headers)
    else:
        with pytest.raises(Unauthenticated, match="X-OPS-SIGN"):
            cs.parse(headers)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-ops-timestamp", "yesterday"),
        ("x-ops-timestamp", "0001-01-01T00:00:00+14:00"),  # before year 1 in UTC
        ("x-ops-timestamp", "9999-12-31T23:59:59-14:00"),  # after year 9999 in UTC
        ("x-ops-authorization-1", "QUFB"),  # a signature of the wrong length
        ("x-ops-authorization-1", "not*base64"),
        ("x-ops-authorization-7", "QUFB"),  # a gap in the numbering
    ],
)
def test_malformed_headers_are_refused(name: str, value: str) -> None:
    headers = {k.lower(): v for k, v in fresh("1.0").items()}
    headers[name] = value
    with pytest.raises(Unauthenticated):
        check(headers)


def _pem(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.mark.parametrize(
    "pem",
    [
        "",
        "not a key",
        PRIVATE,  # a private key is not what is registered
        _pem(ec.generate_private_key(ec.SECP256R1()).public_key()),  # not RSA
        _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()),
    ],
)
def test_only_rsa_public_keys_are_accepted(pem: str) -> None:
    with pytest.raises(Invalid):
        cs.load_public_key(pem)
