"""Times in responses: ``dumps`` writes a datetime (through ``utc`` where a rendering keeps
it a datetime) exactly as ``iso`` writes it, whatever its zone."""

from __future__ import annotations

import datetime as dt

import orjson
from hypothesis import given
from hypothesis import strategies as st

from jobyard.api.responses import dumps, iso, utc

zones = st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-9, minutes=-30))]
)
times = st.datetimes(
    min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(9998, 12, 31), timezones=zones
)


@given(times)
def test_dumps_writes_a_time_as_iso_does(value: dt.datetime) -> None:
    assert orjson.loads(dumps({"at": utc(value)})) == {"at": iso(value)}
    if value.tzinfo is dt.UTC:
        assert orjson.loads(dumps([value])) == [iso(value)]


def test_no_time_is_null() -> None:
    assert utc(None) is None and dumps({"at": utc(None)}) == b'{"at":null}'
