"""JobSpec validation (domain/jobspec.py) and account-name rules (domain/accounts.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobyard.domain.accounts import Role, check_email, check_org_name, parse_role, require
from jobyard.domain.errors import Forbidden, Invalid
from jobyard.domain.jobs import JobStatus
from jobyard.domain.jobspec import MAX_RUN_TIMEOUT, JobSpec
from jobyard.domain.quorum import Quorum
from jobyard.domain.records import Job
from jobyard.domain.targets import Target
from jobyard.service.jobs import spec_of

T = Target(nodes=("a", "b"))


def spec(**kw: Any) -> JobSpec:
    kw.setdefault("target", T)
    if "argv" not in kw:
        kw.setdefault("command", "true")
    return JobSpec(**kw)


@pytest.mark.parametrize(
    ("kw", "field", "words"),
    [
        ({"command": ""}, "command", "needs a command"),
        ({"command": "   "}, "command", "needs a command"),
        ({"command": "a\x00b"}, "command", "NUL"),
        ({"command": "x", "argv": ("ls",)}, "argv", "not both"),
        ({"argv": ()}, "argv", "non-empty"),
        ({"argv": ("a\x00",)}, "argv", "NUL"),
        ({"run_timeout": 0}, "run_timeout", "between 1 and"),
        ({"run_timeout": MAX_RUN_TIMEOUT + 1}, "run_timeout", "between 1 and"),
        ({"env": {"": "x"}}, "env", "environment variable name"),
        ({"env": {"1A": "x"}}, "env", "environment variable name"),
        ({"env": {"A-B": "x"}}, "env", "environment variable name"),
        ({"env": {"A": "x\x00"}}, "env", "NUL"),
        ({"name": ""}, "name", "1 to 200"),
        ({"name": "x" * 201}, "name", "1 to 200"),
        ({"name": "a\x00"}, "name", "NUL"),
        ({"description": "\x00"}, "description", "NUL"),
        ({"dir": "/x\x00"}, "dir", "NUL"),
        ({"quorum": Quorum(count=3)}, "quorum", "more than the 2 target nodes"),
    ],
)
def test_invalid_specs(kw: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(Invalid) as info:
        spec(**kw)
    assert info.value.field == field
    assert words in info.value.detail


def test_valid_edges() -> None:
    spec(run_timeout=1)
    spec(run_timeout=MAX_RUN_TIMEOUT)
    spec(run_timeout=None)
    spec(quorum=Quorum(count=2))
    spec(name="x" * 200, env={"_A1": "", "PATH": "/bin"})
    s = spec(argv=("echo", "a b", "'"), command="")
    assert s.display_command == "echo 'a b' ''\"'\"''"
    # A quorum count above a tag target's size is left to voting (nodes come and go).
    JobSpec(target=Target(tags=("web",)), command="x", quorum=Quorum(count=50))


names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20)
env_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
specs = st.builds(
    JobSpec,
    target=st.one_of(
        st.lists(st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True), min_size=1, unique=True)
        .map(tuple)
        .map(lambda n: Target(nodes=n)),
        st.builds(
            lambda t, c: Target(tags=(t,), count=c), st.sampled_from("xyz"), st.integers(1, 9)
        ),
    ),
    command=names.filter(str.strip),
    name=st.one_of(st.none(), names),
    description=st.text(st.characters(exclude_characters="\x00"), max_size=30),
    quorum=st.sampled_from([Quorum(), Quorum(percent=50.0), Quorum(count=1)]),
    run_timeout=st.one_of(st.none(), st.integers(1, MAX_RUN_TIMEOUT)),
    env=st.dictionaries(env_names, st.text(st.characters(exclude_characters="\x00"), max_size=8)),
    dir=st.one_of(st.none(), st.just("/tmp")),
    capture_output=st.booleans(),
)


def job_from_row(row: dict[str, Any]) -> Job:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return Job(
        id=1,
        org_id=1,
        status=JobStatus.DRAFT,
        attempt=0,
        kind="script",
        state=None,
        result=None,
        arguments=None,
        task_id=None,
        trigger_id=None,
        cluster_id=None,
        created_by=1,
        created_at=now,
        updated_at=now,
        submitted_at=None,
        started_at=None,
        finished_at=None,
        deadline=None,
        **row,
    )


@given(specs)
def test_a_spec_survives_its_row(s: JobSpec) -> None:
    """What is stored is what was asked: spec → row → spec is the identity."""
    assert spec_of(job_from_row(s.row())) == s


@given(st.lists(st.text(st.characters(exclude_characters="\x00"), max_size=5), min_size=1))
def test_argv_specs_survive_their_row(argv: list[str]) -> None:
    s = JobSpec(target=T, argv=tuple(argv))
    assert spec_of(job_from_row(s.row())) == s


# -- accounts


@pytest.mark.parametrize("name", ["acme", "a", "a-b_c9", "x" * 63])
def test_good_org_names(name: str) -> None:
    assert check_org_name(name) == name


@pytest.mark.parametrize("name", ["", "Acme", "-a", "a b", "x" * 64, "acme\n", "ä", "a/b"])
def test_bad_org_names(name: str) -> None:
    with pytest.raises(Invalid):
        check_org_name(name)


def test_emails() -> None:
    assert check_email(" Ann@Example.COM ") == "ann@example.com"
    for bad in ["", "ann", "a@b@c", "a b@c", "@c", "a@", "a@" + "b" * 260]:
        with pytest.raises(Invalid):
            check_email(bad)


def test_roles() -> None:
    assert parse_role(" Admin ") is Role.ADMIN
    with pytest.raises(Invalid, match="viewer, user, admin, agent"):
        parse_role("root")
    order = [Role.VIEWER, Role.USER, Role.ADMIN]
    for i, have in enumerate(order):
        for j, need in enumerate(order):
            assert have.at_least(need) is (i >= j)
        assert not Role.AGENT.at_least(have)
        assert not have.at_least(Role.AGENT)
    assert Role.AGENT.at_least(Role.AGENT)
    with pytest.raises(Forbidden, match="needs the admin role"):
        require(Role.USER, Role.ADMIN, "x")
