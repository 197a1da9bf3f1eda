"""Quorum arithmetic and target selection (domain/quorum.py, domain/targets.py)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from jobyard.domain.errors import Invalid
from jobyard.domain.quorum import Quorum
from jobyard.domain.targets import NodeInfo, Target, check_node_name, select_nodes

# -- quorum


def test_default_is_all_nodes() -> None:
    for empty in (None, ""):
        q = Quorum.parse(empty)
        assert q.render() == "100%"
        assert [q.required(n) for n in (0, 1, 7)] == [0, 1, 7]


@given(st.integers(0, 10_000))
def test_count(n: int) -> None:
    assert Quorum.parse(n) == Quorum(count=n)
    assert Quorum.parse(str(n)) == Quorum(count=n)
    assert Quorum.parse(f"  {n} ") == Quorum(count=n)
    assert Quorum.parse(n).required(3) == n
    assert Quorum.parse(n).render() == str(n)


@given(
    st.integers(0, 100),
    st.sampled_from(["", "0", "5", "25", "333", "999"]),
    st.integers(0, 5000),
)
def test_percent_rounds_up_exactly(whole: int, decimals: str, targets: int) -> None:
    text = f"{whole}.{decimals}" if decimals else str(whole)
    exact = Fraction(text)
    assume(exact <= 100)
    q = Quorum.parse(f"{text}%")
    want = math.ceil(targets * exact / 100)
    assert q.required(targets) == want
    assert 0 <= q.required(targets) <= targets
    assert Quorum.parse(q.render()) == q  # rendering round-trips


@pytest.mark.parametrize(
    ("text", "targets", "want"),
    [("50%", 3, 2), ("50%", 4, 2), ("1%", 1, 1), ("0%", 10, 0), ("33.3%", 3, 1), ("100%", 9, 9)],
)
def test_percent_examples(text: str, targets: int, want: int) -> None:
    assert Quorum.parse(text).required(targets) == want


@pytest.mark.parametrize(
    "bad",
    [True, False, -1, "-1", "abc", "101%", "-5%", "50", "5 0", "%", "50%%", "1e2%", "²", "٣%", 1.5],
)
def test_bad_quorum_is_invalid(bad: Any) -> None:
    if bad == "50":
        assert Quorum.parse(bad) == Quorum(count=50)  # a digit string is a count
        return
    with pytest.raises(Invalid) as info:
        Quorum.parse(bad)
    assert info.value.field == "quorum"
    assert "quorum" in info.value.detail


@given(st.text(max_size=12))
def test_any_text_parses_or_is_invalid(text: str) -> None:
    try:
        q = Quorum.parse(text)
    except Invalid:
        return
    assert (q.count is None) != (q.percent is None)
    assert q.required(10) >= 0


# -- targets


def test_a_target_needs_exactly_one_kind() -> None:
    with pytest.raises(Invalid, match="needs a target"):
        Target()
    with pytest.raises(Invalid, match="only one"):
        Target(nodes=("a",), cluster="c")
    with pytest.raises(Invalid, match="only one"):
        Target(cluster="c", tags=("t",))
    Target(count=2)  # any two nodes
    Target(tags=("web",), count=1)
    Target(cluster="c", count=3)


def test_target_rules() -> None:
    with pytest.raises(Invalid, match="twice"):
        Target(nodes=("a", "a"))
    with pytest.raises(Invalid, match="at least 1"):
        Target(tags=("t",), count=0)
    with pytest.raises(Invalid, match="not named nodes"):
        Target(nodes=("a",), count=1)
    with pytest.raises(Invalid, match="node name"):
        Target(nodes=("bad name",))


@pytest.mark.parametrize("name", ["web1", "a.b-c_d", "x@y", "host:1", "A" * 253])
def test_good_node_names(name: str) -> None:
    assert check_node_name(name) == name


@pytest.mark.parametrize("name", ["", " web", "-x", "a/b", "a b", "A" * 254, "é", "x\n"])
def test_bad_node_names(name: str) -> None:
    with pytest.raises(Invalid):
        check_node_name(name)


@given(
    st.builds(
        Target,
        nodes=st.just(()),
        cluster=st.none(),
        tags=st.lists(st.sampled_from("abc"), min_size=1, max_size=2, unique=True).map(tuple),
        count=st.one_of(st.none(), st.integers(1, 5)),
    )
)
def test_target_json_round_trip(target: Target) -> None:
    assert Target.from_json(target.as_json()) == target


node_infos = st.lists(
    st.builds(
        NodeInfo,
        name=st.sampled_from([f"n{i}" for i in range(12)]),
        online=st.booleans(),
        busy=st.booleans(),
        tags=st.frozensets(st.sampled_from("abc"), max_size=3),
        cluster=st.sampled_from([None, "c1", "c2"]),
    ),
    max_size=12,
    unique_by=lambda n: n.name,
)


@given(node_infos, st.lists(st.sampled_from([f"n{i}" for i in range(20)]), min_size=1, unique=True))
def test_explicit_nodes_are_taken_as_given(nodes: list[NodeInfo], names: list[str]) -> None:
    assert select_nodes(Target(nodes=tuple(names)), nodes) == names


@given(
    node_infos,
    st.one_of(
        st.builds(
            lambda t: Target(tags=t), st.lists(st.sampled_from("abc"), min_size=1).map(tuple)
        ),
        st.builds(lambda c: Target(cluster=c), st.sampled_from(["c1", "c2", "c3"])),
    ),
    st.one_of(st.none(), st.integers(1, 15)),
)
def test_selection_picks_only_matching_nodes(
    nodes: list[NodeInfo], base: Target, count: int | None
) -> None:
    target = Target(cluster=base.cluster, tags=base.tags, count=count)
    chosen = select_nodes(target, nodes)
    by_name = {n.name: n for n in nodes}
    if target.cluster:
        members = [n for n in nodes if n.cluster == target.cluster]
    else:
        members = [n for n in nodes if set(target.tags) <= n.tags]
    assert len(chosen) == len(set(chosen))
    assert set(chosen) <= {n.name for n in members}
    if count is None:
        assert sorted(chosen) == sorted(n.name for n in members)
    else:
        assert len(chosen) == min(count, len(members))
        available = [n for n in members if n.online and not n.busy]
        picked_available = [c for c in chosen if by_name[c].online and not by_name[c].busy]
        # Available nodes are preferred: as many as possible of them are chosen.
        assert len(picked_available) == min(count, len(available))


@given(node_infos, st.integers(1, 15))
def test_a_bare_count_takes_any_nodes(nodes: list[NodeInfo], count: int) -> None:
    chosen = select_nodes(Target(count=count), nodes)
    assert len(chosen) == min(count, len(nodes))
    assert len(set(chosen)) == len(chosen)
