"""The ID token checks of OIDC sign-in, on tokens signed here: a token is refused unless its
signature, issuer, audience, expiry and nonce are right (service/oidc.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from jobyard.domain.errors import Unauthenticated
from jobyard.service import oidc

ISSUER = "https://id.example"
CLIENT = "jobyard"


def key() -> RSAKey:
    made = RSAKey.generate_key(2048, private=True)
    made.ensure_kid()
    return made


SIGNER = key()
PROVIDER = oidc.Provider(
    issuer=ISSUER,
    client_id=CLIENT,
    client_secret="s",
    scopes="openid email",
    name="Example",
    domains=frozenset(),
    role_claim="",
    rules=(),
    auto_provision=False,
)
PENDING = oidc.Pending(state="st", nonce="the-nonce", verifier="v" * 48, next="/jobs")


def metadata(signer: RSAKey = SIGNER) -> Any:
    meta = oidc._Metadata({"jwks_uri": "unused", "issuer": ISSUER}, time.monotonic())
    meta.keys = KeySet([signer]).as_dict(private=False)
    return meta


def id_token(signer: RSAKey = SIGNER, kid: str | None = None, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "ada",
        "aud": CLIENT,
        "iat": now,
        "exp": now + 300,
        "nonce": "the-nonce",
        "email": "ada@acme.test",
        **changes,
    }
    header = {"alg": "RS256", "kid": kid or signer.kid}
    return {"id_token": jwt.encode(header, claims, signer), "access_token": "at"}


async def test_a_right_token_gives_its_claims() -> None:
    claims = await oidc._id_token_claims(PROVIDER, metadata(), PENDING, id_token())
    assert claims["email"] == "ada@acme.test"


@pytest.mark.parametrize(
    "changes",
    [
        {"nonce": "another-nonce"},
        {"aud": "someone-else"},
        {"iss": "https://evil.example"},
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
    ],
    ids=["nonce", "audience", "issuer", "expired"],
)
async def test_a_wrong_claim_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(Unauthenticated, match="does not check"):
        await oidc._id_token_claims(PROVIDER, metadata(), PENDING, id_token(**changes))


async def test_a_token_signed_by_another_key_is_refused() -> None:
    forged = id_token(key(), kid=SIGNER.kid)  # names the provider's key, signed by another
    with pytest.raises(Unauthenticated, match="does not check"):
        await oidc._id_token_claims(PROVIDER, metadata(), PENDING, forged)
