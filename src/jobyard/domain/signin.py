"""Who may sign in through an OpenID Connect provider, and with which roles: pure rules over
the settings' words and the ID token's claims.

- Allowed email domains: ``"acme.com, acme.io"`` (empty: any); compared case-insensitively
  with the part after the last ``@``.
- Role map: ``"VALUE=ORG:ROLE, ..."``. A user whose role claim (a string or a list of
  strings; a dotted path reaches into objects, as Keycloak's ``realm_access.roles``) holds
  VALUE gets ROLE in ORG; ``*`` matches every user who may sign in. The highest role wins
  when several values name the same organization. The organizations the map names are
  managed by the provider: a user who matches none of their values is no member there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobyard.domain.accounts import Role, check_org_name
from jobyard.domain.errors import Invalid

ANY = "*"


@dataclass(frozen=True)
class RoleRule:
    value: str
    org: str
    role: Role


def parse_role_map(text: str) -> tuple[RoleRule, ...]:
    """The rules of a role map (ValueError naming the entry that is wrong)."""
    rules = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        value, eq, target = entry.rpartition("=")
        org, colon, role = target.partition(":")
        if not eq or not colon or not value.strip():
            raise ValueError(
                f"oidc_role_map: {entry!r} is not VALUE=ORG:ROLE (e.g. jobyard-admins=acme:admin)"
            )
        try:
            check_org_name(org.strip())
            parsed = Role(role.strip().lower())
        except (Invalid, ValueError):
            raise ValueError(
                f"oidc_role_map: {entry!r}: {org.strip()!r} is not an organization name or "
                f"{role.strip()!r} is not one of viewer, user, admin"
            ) from None
        if parsed is Role.AGENT:
            raise ValueError(f"oidc_role_map: {entry!r}: agent is a token role, not a person's")
        rules.append(RoleRule(value.strip(), org.strip(), parsed))
    return tuple(rules)


def parse_domains(text: str) -> frozenset[str]:
    return frozenset(d.strip().lower().lstrip("@") for d in text.split(",") if d.strip())


def email_allowed(email: str, domains: frozenset[str]) -> bool:
    """True when ``domains`` is empty or names the email's domain."""
    return not domains or email.rpartition("@")[2].lower() in domains


def claim_values(claims: Mapping[str, Any], path: str) -> set[str]:
    """The strings at ``path`` (dotted) in the claims: one string, or a list's strings."""
    found: Any = claims
    for part in path.split("."):
        if not isinstance(found, Mapping) or part not in found:
            return set()
        found = found[part]
    if isinstance(found, str):
        return {found}
    if isinstance(found, list):
        return {v for v in found if isinstance(v, str)}
    return set()


def grants(rules: tuple[RoleRule, ...], values: set[str]) -> dict[str, Role]:
    """Organization -> role for a user whose role claim holds ``values``."""
    out: dict[str, Role] = {}
    for rule in rules:
        if rule.value == ANY or rule.value in values:
            held = out.get(rule.org)
            if held is None or rule.role.rank > held.rank:
                out[rule.org] = rule.role
    return out


def managed_orgs(rules: tuple[RoleRule, ...]) -> set[str]:
    """The organizations whose members the provider decides."""
    return {rule.org for rule in rules}
