"""Roles and what each may do. viewer < user < admin; ``agent`` stands apart (node credentials)."""

from __future__ import annotations

import re
from enum import StrEnum

from jobyard.domain.errors import Forbidden, Invalid


class Role(StrEnum):
    VIEWER = "viewer"
    USER = "user"
    ADMIN = "admin"
    AGENT = "agent"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Role) -> bool:
        """True when this human role includes ``other``; agents include no human role."""
        if self is Role.AGENT or other is Role.AGENT:
            return self is other
        return self.rank >= other.rank


_RANK = {Role.VIEWER: 1, Role.USER: 2, Role.ADMIN: 3, Role.AGENT: 0}


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise Invalid(
            f"unknown role {value!r}: use one of viewer, user, admin, agent", "role"
        ) from None


def require(role: Role, needed: Role, action: str) -> None:
    if not role.at_least(needed):
        raise Forbidden(f"{action} needs the {needed} role; this credential has {role}")


# \Z, not $: "$" also matches before a trailing newline.
_ORG_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\Z")


def check_org_name(name: str) -> str:
    if not _ORG_NAME.match(name):
        raise Invalid(
            "an organization name is 1-63 characters of a-z, 0-9, '-' and '_', "
            "starting with a letter or digit",
            "name",
        )
    return name


def check_email(email: str) -> str:
    email = email.strip()
    if not _EMAIL.match(email) or len(email) > 254:
        raise Invalid(f"{email!r} is not an email address", "email")
    return email.lower()
