"""The pure rules of OIDC sign-in: allowed domains, the role claim and the role map."""

from __future__ import annotations

import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.signin import (
    claim_values,
    email_allowed,
    grants,
    managed_orgs,
    parse_domains,
    parse_role_map,
)


def test_domains_compare_without_case_and_empty_allows_any() -> None:
    domains = parse_domains(" Acme.test, @acme.io ,")
    assert domains == {"acme.test", "acme.io"}
    assert email_allowed("ada@ACME.test", domains)
    assert not email_allowed("eve@acme.test.evil", domains)
    assert not email_allowed("acme.test@evil.test", domains)
    assert email_allowed("anyone@anywhere", frozenset())


def test_claim_values_read_strings_lists_and_dotted_paths() -> None:
    claims = {"groups": ["ops", 3, "sre"], "role": "admin", "realm_access": {"roles": ["a"]}}
    assert claim_values(claims, "groups") == {"ops", "sre"}
    assert claim_values(claims, "role") == {"admin"}
    assert claim_values(claims, "realm_access.roles") == {"a"}
    assert claim_values(claims, "realm_access.nothing") == set()
    assert claim_values(claims, "") == set()


def test_the_highest_mapped_role_wins_and_star_matches_everyone() -> None:
    rules = parse_role_map("*=acme:viewer, ops=acme:admin, dev = acme : user, dev=beta:user")
    assert grants(rules, set()) == {"acme": Role.VIEWER}
    assert grants(rules, {"dev"}) == {"acme": Role.USER, "beta": Role.USER}
    assert grants(rules, {"dev", "ops"}) == {"acme": Role.ADMIN, "beta": Role.USER}
    assert managed_orgs(rules) == {"acme", "beta"}
    assert parse_role_map("a=b=acme:user")[0].value == "a=b"  # the last = splits


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ops", "VALUE=ORG:ROLE"),
        ("ops=acme", "VALUE=ORG:ROLE"),
        ("=acme:user", "VALUE=ORG:ROLE"),
        ("ops=Acme Corp:user", "not an organization name"),
        ("ops=acme:owner", "not one of viewer, user, admin"),
        ("ops=acme:agent", "token role"),
    ],
)
def test_a_wrong_role_map_entry_is_named(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as caught:
        parse_role_map(text)
    assert repr(text.strip()) in str(caught.value) or text in str(caught.value)
