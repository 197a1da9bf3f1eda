"""Signing requests as a real Chef client does: chefsessionlib (PyPI), and mixlib's vectors.

``signed_headers`` asks chefsessionlib, a public Chef API client, for the headers it
would send, so the tests check jobyard against a client nobody here wrote. The vectors
are the fixed request, key and signatures of mixlib-authentication's own specs
(spec/mixlib/authentication/mixlib_authentication_spec.rb), the Ruby library every
knife command signs with.
"""

from __future__ import annotations

import requests
from chefsessionlib import ChefSession


def signed_headers(
    user: str,
    private_pem: str,
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    version: str = "1.3",
    timestamp: str | None = None,
) -> dict[str, str]:
    """The headers chefsessionlib sends for this request (its own signing code)."""
    session = ChefSession(user, private_pem, authentication_version=version)
    prepared = session.prepare_request(requests.Request(method, url, data=body or None))
    stamp = timestamp or session.get_current_timestamp()
    prepared = session._authenticate_request(prepared, stamp)
    session.close()
    return {k: str(v) for k, v in prepared.headers.items()}


MIXLIB_USER = "spec-user"
MIXLIB_BODY = b"Spec Body"
MIXLIB_PATH = "/organizations/clownco"
MIXLIB_TIME = "2009-01-01T12:00:00Z"
MIXLIB_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0ueqo76MXuP6XqZBILFz
iH/9AI7C6PaN5W0dSvkr9yInyGHSz/IR1+4tqvP2qlfKVKI4CP6BFH251Ft9qMUB
uAsnlAVQ1z0exDtIFFOyQCdR7iXmjBIWMSS4buBwRQXwDK7id1OxtU23qVJv+xwE
V0IzaaSJmaGLIbvRBD+qatfUuQJBMU/04DdJIwvLtZBYdC2219m5dUBQaa4bimL+
YN9EcsDzD9h9UxQo5ReK7b3cNMzJBKJWLzFBcJuePMzAnLFktr/RufX4wpXe6XJx
oVPaHo72GorLkwnQ0HYMTY8rehT4mDi1FI969LHCFFaFHSAaRnwdXaQkJmSfcxzC
YQIDAQAB
-----END PUBLIC KEY-----
"""
_SHA1_BODY = "DFteJZPVv6WKdQmMqZUQUumUyRs="
_SHA256_BODY = "hDlKNZhIhgso3Fs0S0pZwJ0xyBWtR1RBaeHs1DrzOho="
_LINES = {
    "1.0": [
        "jVHrNniWzpbez/eGWjFnO6lINRIuKOg40ZTIQudcFe47Z9e/HvrszfVXlKG4",
        "NMzYZgyooSvU85qkIUmKuCqgG2AIlvYa2Q/2ctrMhoaHhLOCWWoqYNMaEqPc",
        "3tKHE+CfvP+WuPdWk4jv4wpIkAz6ZLxToxcGhXmZbXpk56YTmqgBW2cbbw4O",
        "IWPZDHSiPcw//AYNgW1CCDptt+UFuaFYbtqZegcBd2n/jzcWODA7zL4KWEUy",
        "9q4rlh/+1tBReg60QdsmDRsw/cdO1GZrKtuCwbuD4+nbRdVBKv72rqHX9cu0",
        "utju9jzczCyB+sSAQWrxSsXB/b8vV2qs0l4VD2ML+w==",
    ],
    "1.1": [
        "UfZD9dRz6rFu6LbP5Mo1oNHcWYxpNIcUfFCffJS1FQa0GtfU/vkt3/O5HuCM",
        "1wIFl/U0f5faH9EWpXWY5NwKR031Myxcabw4t4ZLO69CIh/3qx1XnjcZvt2w",
        "c2R9bx/43IWA/r8w8Q6decuu0f6ZlNheJeJhaYPI8piX/aH+uHBH8zTACZu8",
        "vMnl5MF3/OIlsZc8cemq6eKYstp8a8KYq9OmkB5IXIX6qVMJHA6fRvQEB/7j",
        "281Q7oI/O+lE8AmVyBbwruPb7Mp6s4839eYiOdjbDwFjYtbS3XgAjrHlaD7W",
        "FDlbAG7H8Dmvo+wBxmtNkszhzbBnEYtuwQqT8nM/8A==",
    ],
    "1.3": [
        "FZOmXAyOBAZQV/uw188iBljBJXOm+m8xQ/8KTGLkgGwZNcRFxk1m953XjE3W",
        "VGy1dFT76KeaNWmPCNtDmprfH2na5UZFtfLIKrPv7xm80V+lzEzTd9WBwsfP",
        "42dZ9N+V9I5SVfcL/lWrrlpdybfceJC5jOcP5tzfJXWUITwb6Z3Erg3DU3Uh",
        "H9h9E0qWlYGqmiNCVrBnpe6Si1gU/Jl+rXlRSNbLJ4GlArAPuL976iTYJTzE",
        "MmbLUIm3JRYi00Yb01IUCCKdI90vUq1HHNtlTEu93YZfQaJwRxXlGkCNwIJe",
        "fy49QzaCIEu1XiOx5Jn+4GmkrZch/RrK9VzQWXgs+w==",
    ],
}
_SIGN = {
    "1.0": "version=1.0",
    "1.1": "algorithm=sha1;version=1.1;",
    "1.3": "algorithm=sha256;version=1.3;",
}


def mixlib_headers(version: str) -> dict[str, str]:
    """The headers of mixlib's spec request for one protocol version (lower-case names)."""
    out = {
        "host": "127.0.0.1",
        "x-ops-sign": _SIGN[version],
        "x-ops-timestamp": MIXLIB_TIME,
        "x-ops-content-hash": _SHA256_BODY if version == "1.3" else _SHA1_BODY,
        "x-ops-userid": MIXLIB_USER,
    }
    if version == "1.3":
        out["x-ops-server-api-version"] = "1"
    for i, line in enumerate(_LINES[version], 1):
        out[f"x-ops-authorization-{i}"] = line
    return out
