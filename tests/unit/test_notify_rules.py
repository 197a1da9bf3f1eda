"""Pure rules of notifications: which event tells whom what, retries, signatures, addresses."""

from __future__ import annotations

import datetime as dt

import pytest

from jobyard.domain.errors import Invalid
from jobyard.domain.notifications import Kind, RetryPolicy, check_kinds, kind_of, subscribed
from jobyard.domain.records import Event
from jobyard.notify import webhooks
from jobyard.notify.email import message_id
from jobyard.notify.messages import About, compose

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def event(
    kind: str, type: str, to: str | None = None, frm: str | None = None, **data: object
) -> Event:
    return Event(
        id=1,
        org_id=1,
        kind=kind,
        subject_id=7,
        job_id=7 if kind == "job" else None,
        node_name=None,
        type=type,
        from_status=frm,
        to_status=to,
        actor="a@example.com",
        reason=None,
        data=dict(data) or None,
        created_at=NOW,
    )


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        (["succeeded", "succeeded"], Kind.JOB_COMPLETED),
        (["succeeded", "nacked", "unavailable"], Kind.JOB_COMPLETED),
        (["succeeded", "failed"], Kind.JOB_FAILED),
        (["crashed"], Kind.JOB_FAILED),
        (["timed_out", "succeeded"], Kind.JOB_FAILED),
        (["aborted"], Kind.JOB_FAILED),
        ([], Kind.JOB_COMPLETED),
    ],
)
def test_a_complete_job_is_failed_when_any_node_failed(runs: list[str], expected: Kind) -> None:
    assert kind_of(event("job", "job.status", "complete", "running"), runs) is expected


@pytest.mark.parametrize(
    ("to", "frm", "expected"),
    [
        ("quorum_failed", "voting", Kind.JOB_FAILED),
        ("timed_out", "running", Kind.JOB_FAILED),
        ("aborted", "running", Kind.JOB_STOPPED),
        ("running", "voting", Kind.JOB_STARTED),
        ("new", "draft", Kind.JOB_SUBMITTED),
        ("new", "onhold", None),
        ("voting", "new", None),
        ("onhold", "draft", None),
    ],
)
def test_job_statuses(to: str, frm: str, expected: Kind | None) -> None:
    assert kind_of(event("job", "job.status", to, frm)) is expected


def test_clusters_approvals_shares_and_noise() -> None:
    assert kind_of(event("cluster", "cluster.status", "available")) is Kind.CLUSTER_AVAILABLE
    assert kind_of(event("cluster", "cluster.status", "terminated")) is Kind.CLUSTER_TERMINATED
    assert kind_of(event("cluster", "cluster.status", "error")) is Kind.CLUSTER_ERROR
    assert kind_of(event("cluster", "cluster.status", "scaling")) is None
    assert kind_of(event("cluster", "cluster.created", "pending")) is Kind.CLUSTER_REQUESTED
    assert kind_of(event("cluster", "cluster.job_started")) is Kind.CLUSTER_JOB_STARTED
    assert kind_of(event("job", "approval.requested", approvers=[1])) is Kind.APPROVAL_REQUESTED
    assert kind_of(event("job", "job.shared", user_id=3)) is Kind.JOB_SHARED
    assert kind_of(event("job", "input.requested", requested_by=3)) is Kind.INPUT_REQUESTED
    assert kind_of(event("job", "notification.requested", recipients=[3])) is Kind.TASK_MESSAGE
    assert kind_of(event("node_run", "node_run.status", "succeeded")) is None
    assert kind_of(event("job", "job.created", "draft")) is None


def test_webhook_event_types() -> None:
    assert check_kinds(["job.failed", "job.failed", "*"]) == ["job.failed", "*"]
    with pytest.raises(Invalid, match=r"unknown event type 'job\.exploded'"):
        check_kinds(["job.exploded"])
    with pytest.raises(Invalid):
        check_kinds([])
    assert subscribed(["*"], "cluster.error")
    assert subscribed(["job.failed"], "job.failed")
    assert not subscribed(["job.failed"], "job.completed")


def test_backoff_doubles_up_to_a_cap_and_gives_up() -> None:
    p = RetryPolicy(base=2, cap=60, max_attempts=5)
    assert [p.delay(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert not p.gives_up(4)
    assert p.gives_up(5)


def test_standard_webhooks_signature_vector() -> None:
    # The reference test vector of the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    sig = webhooks.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = webhooks.headers(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert webhooks.verify(secret, headers, body, now=1614265330 + 10)
    assert not webhooks.verify(secret, headers, body + b" ", now=1614265330)
    assert not webhooks.verify(secret, headers, body, now=1614265330 + 3600)  # replayed late
    assert not webhooks.verify(webhooks.new_secret(), headers, body, now=1614265330)


async def test_urls_are_checked_before_any_request() -> None:
    with pytest.raises(webhooks.AddressRefused, match="loopback"):
        await webhooks.resolve(webhooks.parse("http://127.0.0.1:9/x"), allow_private=False)
    with pytest.raises(webhooks.AddressRefused, match="loopback"):
        await webhooks.resolve(webhooks.parse("http://localhost/x"), allow_private=False)
    with pytest.raises(webhooks.AddressRefused, match=r"private \(6to4 embedding 10\.0\.0\.1\)"):
        await webhooks.resolve(webhooks.parse("http://[2002:a00:1::]/x"), allow_private=False)
    with pytest.raises(webhooks.AddressRefused, match="https://"):
        webhooks.parse("ftp://example.com/")
    with pytest.raises(webhooks.AddressRefused, match="credentials"):
        webhooks.parse("https://user:pw@example.com/")
    allowed = await webhooks.resolve(webhooks.parse("http://127.0.0.1/x"), allow_private=True)
    assert [str(a) for a in allowed] == ["127.0.0.1"]


def test_messages_say_what_happened_and_link_to_the_page() -> None:
    about = About("job", 42, name="backup", status="complete", runs={"succeeded": 2, "failed": 1})
    msg = compose(Kind.JOB_FAILED, about, "https://jy.example.com/")
    assert msg.title == "Job 'backup' (#42) partially failed: 1 of 3 nodes failed"
    assert "(complete · 1 of 3 failed)" in msg.text
    every = About("job", 43, status="complete", runs={"crashed": 2, "timed_out": 1})
    title = compose(Kind.JOB_FAILED, every, "http://h").title
    assert title == "Job #43 failed: 3 of 3 nodes failed"
    quorum = compose(Kind.JOB_FAILED, About("job", 44, status="quorum_failed"), "http://h")
    assert quorum.title == "Job #44 quorum failed"
    assert "1 failed, 2 succeeded" in msg.text
    assert msg.url == "https://jy.example.com/jobs/42"
    cluster = compose(
        Kind.CLUSTER_JOB_STARTED, About("cluster", 3, name="etl", job_id=9), "http://h"
    )
    assert cluster.title == "Job #9 started on Cluster 'etl' (#3)"
    assert cluster.url == "http://h/clusters/3"


def test_message_ids_are_stable_and_well_formed() -> None:
    assert message_id("12.email.u3", "example.com") == "<jobyard.12.email.u3@example.com>"
    assert message_id("a b<c>", "x") == "<jobyard.a-b-c-@x>"
