"""The signed session cookie (a random id only) and its CSRF token (pure, no server)."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from dataclasses import replace
from pathlib import Path

import pytest

from jobyard.settings import Settings
from jobyard.web.session import KEY_FILE, SessionCodec, load_key

KEY = b"k" * 32


def test_a_cookie_carries_only_the_session_id() -> None:
    codec = SessionCodec(KEY)
    visitor = codec.anonymous()
    assert not visitor.signed_in
    assert codec.loads(codec.dumps(visitor)) == visitor
    signed = replace(visitor, user_id=7, org="acme")  # who it is lives on the server
    cookie = codec.dumps(signed)
    assert codec.loads(cookie) == visitor
    payload = json.loads(base64.urlsafe_b64decode(cookie.split(".")[0] + "=="))
    assert set(payload) == {"s", "t"}


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-2] + ("A" if c[-2] != "A" else "B") + c[-1],  # the signature
        lambda c: ("e" if c[0] != "e" else "f") + c[1:],  # the payload
        lambda c: c.replace(".", ""),
        lambda c: c + ".x",
        lambda c: "",
    ],
)
def test_a_changed_cookie_is_no_session(mangle: object) -> None:
    codec = SessionCodec(KEY)
    cookie = codec.dumps(codec.anonymous())
    assert codec.loads(mangle(cookie)) is None  # type: ignore[operator]


def test_another_key_or_an_old_cookie_is_no_session() -> None:
    codec = SessionCodec(KEY, max_age=60)
    session = codec.anonymous()
    assert SessionCodec(b"x" * 32).loads(codec.dumps(session)) is None
    old = type(session)(session.sid, int(time.time()) - 61)
    assert codec.loads(codec.dumps(old)) is None


def test_csrf_tokens_belong_to_one_session() -> None:
    codec = SessionCodec(KEY)
    one, two = codec.anonymous(), codec.anonymous()
    token = codec.csrf_token(one)
    assert codec.csrf_ok(one, token)
    assert codec.csrf_ok(one.for_org("beta"), token)  # switching organization keeps it
    assert not codec.csrf_ok(two, token)
    assert not codec.csrf_ok(one, None) and not codec.csrf_ok(None, token)
    assert token != codec.dumps(one).split(".")[1]  # not the cookie's own signature


def test_cookie_flags_follow_the_public_url(tmp_path: Path) -> None:
    plain = SessionCodec.from_settings(Settings(data_dir=tmp_path))
    header = plain.cookie_header(plain.anonymous())
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header
    secure = SessionCodec.from_settings(
        Settings(data_dir=tmp_path, public_url="https://jobs.example.com")
    )
    assert "; Secure" in secure.cookie_header(secure.anonymous())
    assert "Max-Age=0" in secure.cookie_header(None)


def test_the_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    key = load_key(tmp_path / "data")
    assert len(key) == 32
    assert load_key(tmp_path / "data") == key
    mode = stat.S_IMODE(os.stat(tmp_path / "data" / KEY_FILE).st_mode)
    assert mode == 0o600
    assert [p.name for p in (tmp_path / "data").iterdir()] == [KEY_FILE]
    shared = Settings(data_dir=tmp_path / "other", session_secret="s" * 32)
    codec = SessionCodec.from_settings(shared)
    assert SessionCodec(b"s" * 32).loads(codec.dumps(codec.anonymous())) is not None
    assert not (tmp_path / "other").exists()
