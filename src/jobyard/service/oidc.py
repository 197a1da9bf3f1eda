"""OpenID Connect sign-in for the dashboard: the authorization-code flow with PKCE, state
and nonce, and who the ID token's claims make of the person. Authlib builds the requests and
checks the ID token's claims, joserfc its signature; the HTTP calls are jobyard's own httpx
(Authlib's httpx integration now wants another HTTP library).

    start(svc, redirect_uri, next)      -> (provider's URL, Pending)
        the browser goes to the URL; Pending (state, nonce, PKCE verifier) is kept in a
        signed cookie of that browser (web/oidc.py)
    finish(svc, pending, params, redirect_uri) -> Principal
        the provider sent the browser back with ``code`` and ``state``: the state must be
        the pending one, the code is exchanged (with the verifier) for tokens, the ID token
        is checked (signature by the provider's keys, issuer, audience, expiry, nonce), and
        the claims are mapped to a jobyard user (``admit``)

The provider's metadata (``/.well-known/openid-configuration``) and keys are fetched on first
use and kept for an hour (the keys again at once when a token names a key not among them).
Failures say what happened in words: the provider did not answer (Unavailable), the sign-in
did not start in this browser or expired (Forbidden), the provider refused or sent a token
that does not check (Unauthenticated), the person may not sign in here (Forbidden).
"""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from jobyard.domain import signin
from jobyard.domain.accounts import Role
from jobyard.domain.errors import Forbidden, Invalid, Unauthenticated, Unavailable
from jobyard.domain.records import Principal
from jobyard.service import accounts, revocations
from jobyard.service.context import Services
from jobyard.settings import Settings

log = logging.getLogger("jobyard.oidc")

METADATA_TTL = 3600.0
TIMEOUT = 10.0
PENDING_MAX_AGE = 600  # seconds a browser has to come back from the provider


@dataclass(frozen=True)
class Provider:
    """The configured provider (settings ``oidc_*``), checked once."""

    issuer: str
    client_id: str
    client_secret: str
    scopes: str
    name: str
    domains: frozenset[str]
    role_claim: str
    rules: tuple[signin.RoleRule, ...]
    auto_provision: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> Provider | None:
        """The provider, None when OIDC is off (ValueError naming a wrong setting)."""
        if not settings.oidc_issuer:
            return None
        issuer = settings.oidc_issuer.rstrip("/")
        parts = urlsplit(issuer)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"oidc_issuer: {issuer!r} is not an http(s) URL")
        if not settings.oidc_client_id:
            raise ValueError("oidc_issuer is set but oidc_client_id is empty")
        if "openid" not in settings.oidc_scopes.split():
            raise ValueError(f"oidc_scopes: {settings.oidc_scopes!r} must include openid")
        rules = signin.parse_role_map(settings.oidc_role_map)
        if not settings.oidc_role_claim and any(r.value != signin.ANY for r in rules):
            raise ValueError(
                "oidc_role_map maps claim values but oidc_role_claim (the claim that holds "
                "them, e.g. groups) is empty"
            )
        return cls(
            issuer=issuer,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            scopes=settings.oidc_scopes,
            name=settings.oidc_provider_name or parts.hostname,
            domains=signin.parse_domains(settings.oidc_allowed_domains),
            role_claim=settings.oidc_role_claim,
            rules=rules,
            auto_provision=settings.oidc_auto_provision,
        )


@dataclass
class ProviderState:
    """What a server keeps of its provider: the checked settings, the fetched metadata."""

    provider: Provider | None
    metadata: _Metadata | None = None


def _state(svc: Services) -> ProviderState:
    if svc.runtime.oidc is None:
        svc.runtime.oidc = ProviderState(Provider.from_settings(svc.settings))
    return svc.runtime.oidc


def provider_of(svc: Services) -> Provider | None:
    """The server's provider (None: OIDC sign-in is off), checked on first use."""
    return _state(svc).provider


@dataclass(frozen=True)
class Pending:
    """A sign-in on its way through the provider: what the callback must match."""

    state: str
    nonce: str
    verifier: str
    next: str

    def as_dict(self) -> dict[str, str]:
        return {"s": self.state, "n": self.nonce, "v": self.verifier, "x": self.next}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pending | None:
        try:
            return cls(str(data["s"]), str(data["n"]), str(data["v"]), str(data["x"]))
        except (KeyError, TypeError):
            return None


# -- the provider's metadata and keys


class _Metadata:
    def __init__(self, doc: dict[str, Any], fetched: float) -> None:
        self.doc = doc
        self.fetched = fetched
        self.keys: dict[str, Any] | None = None


def _unavailable(provider: Provider, exc: Exception) -> Unavailable:
    reason = str(exc) or exc.__class__.__name__
    return Unavailable(
        f"the sign-in provider {provider.name} ({provider.issuer}) could not be reached or "
        f"answered wrongly: {reason[:200]}. Try again later, or ask an admin to check it."
    )


async def _get_json(provider: Provider, url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            answer = await http.get(url)
            answer.raise_for_status()
            doc = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise _unavailable(provider, exc) from exc
    if not isinstance(doc, dict):
        raise _unavailable(provider, ValueError(f"{url} did not answer a JSON object"))
    return doc


async def _metadata(svc: Services, provider: Provider) -> _Metadata:
    state = _state(svc)
    cached = state.metadata
    now = time.monotonic()
    if cached is not None and now - cached.fetched < METADATA_TTL:
        return cached
    doc = await _get_json(provider, f"{provider.issuer}/.well-known/openid-configuration")
    if str(doc.get("issuer", "")).rstrip("/") != provider.issuer:
        raise _unavailable(
            provider, ValueError(f"its metadata names the issuer {doc.get('issuer')!r}")
        )
    for needed in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(doc.get(needed), str):
            raise _unavailable(provider, ValueError(f"its metadata has no {needed}"))
    found = state.metadata = _Metadata(doc, now)
    return found


async def _keys(provider: Provider, meta: _Metadata, *, again: bool = False) -> KeySet:
    if meta.keys is None or again:
        meta.keys = await _get_json(provider, meta.doc["jwks_uri"])
    try:
        return KeySet.import_key_set(meta.keys)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError) as exc:
        raise _unavailable(provider, ValueError(f"its keys are not a JWK set: {exc}")) from exc


# -- the flow


async def start(svc: Services, redirect_uri: str, next_path: str) -> tuple[str, Pending]:
    """Where to send the browser, and what its callback must match."""
    provider = _required(svc)
    meta = await _metadata(svc, provider)
    pending = Pending(
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        verifier=secrets.token_urlsafe(48),
        next=next_path,
    )
    url = prepare_grant_uri(
        meta.doc["authorization_endpoint"],
        client_id=provider.client_id,
        response_type="code",
        redirect_uri=redirect_uri,
        scope=provider.scopes,
        state=pending.state,
        nonce=pending.nonce,
        code_challenge=create_s256_code_challenge(pending.verifier),
        code_challenge_method="S256",
    )
    return str(url), pending


async def finish(
    svc: Services, pending: Pending | None, params: Mapping[str, str], redirect_uri: str
) -> Principal:
    """The signed-in principal for a browser back from the provider with ``params``."""
    provider = _required(svc)
    if params.get("error"):
        words = params.get("error_description") or params["error"]
        raise Unauthenticated(f"{provider.name} did not sign you in: {words[:300]}")
    if pending is None or not hmac.compare_digest(params.get("state", ""), pending.state):
        raise Forbidden(
            "this sign-in did not start in this browser, or took longer than "
            f"{PENDING_MAX_AGE // 60} minutes: start again from the sign-in page"
        )
    code = params.get("code", "")
    if not code:
        raise Invalid(f"{provider.name} sent no authorization code: start again")
    meta = await _metadata(svc, provider)
    claims = await _exchange(svc, provider, meta, pending, code, redirect_uri)
    return await admit(svc, provider, claims)


async def _exchange(
    svc: Services,
    provider: Provider,
    meta: _Metadata,
    pending: Pending,
    code: str,
    redirect_uri: str,
) -> dict[str, Any]:
    """The code's tokens, the ID token checked; its claims (with the user info's)."""
    body = prepare_token_request(
        "authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=pending.verifier
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if provider.client_secret:
        # client_secret_basic (OpenID Connect's default): id and secret form-encoded first.
        pair = f"{quote(provider.client_id, safe='')}:{quote(provider.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:  # a public client
        body += "&client_id=" + quote(provider.client_id, safe="")
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            answer = await http.post(meta.doc["token_endpoint"], content=body, headers=headers)
            token = _token_answer(provider, answer)
            claims = await _id_token_claims(provider, meta, pending, token)
            if "email" not in claims and isinstance(meta.doc.get("userinfo_endpoint"), str):
                info = await http.get(
                    meta.doc["userinfo_endpoint"],
                    headers={"Authorization": f"Bearer {token.get('access_token', '')}"},
                )
                info.raise_for_status()
                extra = info.json()
                if isinstance(extra, dict) and extra.get("sub") == claims.get("sub"):
                    claims = {**extra, **claims}
    except (httpx.HTTPError, ValueError) as exc:
        raise _unavailable(provider, exc) from exc
    return claims


def _token_answer(provider: Provider, answer: httpx.Response) -> dict[str, Any]:
    """The token endpoint's answer, or why it refused (Unauthenticated)."""
    try:
        token = answer.json()
    except ValueError:
        token = None
    if not isinstance(token, dict):
        answer.raise_for_status()
        raise ValueError(f"the token endpoint answered {answer.status_code} without JSON")
    if "error" in token or answer.status_code >= 400:
        words = token.get("error_description") or token.get("error") or answer.status_code
        raise Unauthenticated(f"{provider.name} refused the sign-in: {str(words)[:300]}")
    if not isinstance(token.get("id_token"), str):
        raise Unauthenticated(f"{provider.name} sent no ID token: is openid among the scopes?")
    return token


async def _id_token_claims(
    provider: Provider, meta: _Metadata, pending: Pending, token: Mapping[str, Any]
) -> dict[str, Any]:
    algorithms = meta.doc.get("id_token_signing_alg_values_supported") or ["RS256"]
    registry = JWSRegistry(algorithms=list(algorithms), strict_check_header=False)
    try:
        try:
            decoded = jwt.decode(token["id_token"], await _keys(provider, meta), registry=registry)
        except InvalidKeyIdError:  # the provider rotated its keys
            keys = await _keys(provider, meta, again=True)
            decoded = jwt.decode(token["id_token"], keys, registry=registry)
        checked = CodeIDToken(
            decoded.claims,
            decoded.header,
            {"iss": {"values": [provider.issuer, provider.issuer + "/"]}},
            {
                "nonce": pending.nonce,
                "client_id": provider.client_id,
                "access_token": token.get("access_token"),
            },
        )
        checked.validate(leeway=120)
    except (JoseError, ValueError) as exc:
        raise Unauthenticated(
            f"the ID token from {provider.name} does not check ({exc}): start again"
        ) from exc
    return dict(decoded.claims)


def _required(svc: Services) -> Provider:
    provider = provider_of(svc)
    if provider is None:
        raise Forbidden("sign-in with an OpenID Connect provider is not set up on this server")
    return provider


# -- who the claims make of the person


async def admit(svc: Services, provider: Provider, claims: Mapping[str, Any]) -> Principal:
    """The principal of the person the claims describe: an existing user matched by email
    (or, with auto-provisioning, a new one), their memberships in the organizations the
    role map manages brought in line with the role claim."""
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise Forbidden(
            f"{provider.name} sent no email address for this account: jobyard matches people "
            "by email (the email scope, oidc_scopes)"
        )
    email = email.strip().lower()
    if claims.get("email_verified") is False:
        raise Forbidden(f"{provider.name} has not verified {email}: verify it there first")
    if not signin.email_allowed(email, provider.domains):
        allowed = ", ".join(sorted(provider.domains))
        raise Forbidden(f"{email} may not sign in here: only addresses at {allowed} may")
    given = signin.grants(provider.rules, signin.claim_values(claims, provider.role_claim))
    now = svc.clock.now()
    changed: list[int] = []
    async with svc.db.begin() as tx:
        user = await tx.accounts.user_by_email(email)
        if user is None:
            if not provider.auto_provision:
                raise Forbidden(
                    f"no jobyard account has the email {email}: ask an admin to add you"
                )
            if not given:
                raise Forbidden(
                    f"{provider.name} gives {email} no role here (claim "
                    f"{provider.role_claim or '-'}): ask an admin to add you"
                )
            name = claims.get("name")
            display = name if isinstance(name, str) and name.strip() else email.split("@")[0]
            user = await tx.accounts.insert_user(email, display.strip()[:200], None, now)
        for org_name in sorted(signin.managed_orgs(provider.rules)):
            org = await tx.accounts.org_by_name(org_name)
            if org is None:
                log.warning("oidc_role_map names organization %r, which does not exist", org_name)
                continue
            role: Role | None = given.get(org_name)
            held = await tx.accounts.role_of(org.id, user.id)
            if role is None and held is not None:
                await tx.accounts.delete_membership(org.id, user.id)
                await tx.sessions.revoke_user(user.id, now, org_id=org.id)
                changed.append(org.id)
            elif role is not None and held is not role:
                await tx.accounts.upsert_membership(org.id, user.id, role, now)
                changed.append(org.id)
        orgs = [org.name for org, _ in await tx.accounts.orgs_of_user(user.id)]
    if changed:
        accounts.forget_tokens(svc)
        for org_id in changed:
            revocations.credentials_changed(svc, org_id, user_id=user.id)
    if not orgs:
        raise Forbidden(f"{email} belongs to no organization here: ask an admin to add you")
    first = next((name for name in orgs if name in given), orgs[0])
    return await accounts.principal_for_user(svc, user.id, first)
