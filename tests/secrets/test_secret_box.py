"""Sealing and opening with the server's key: where the key comes from, what is refused."""

from __future__ import annotations

import stat

import pytest
from cryptography.fernet import Fernet

from jobyard.domain.secrets import is_sealed
from jobyard.service.secrets import SecretBox, SecretKeyError, key_id, new_key
from jobyard.settings import Settings


def test_sqlite_makes_a_private_key_file_once(settings: Settings) -> None:
    box = SecretBox(settings, sqlite=True)
    assert not box.key_file.exists()
    sealed = box.seal("hunter2")
    assert is_sealed(sealed) and "hunter2" not in sealed
    assert stat.S_IMODE(box.key_file.stat().st_mode) == 0o600
    again = SecretBox(settings, sqlite=True)
    assert again.open(sealed) == "hunter2"
    assert box.key_file.read_text() == again.key_file.read_text()


def test_postgresql_without_a_key_refuses_to_seal(settings: Settings) -> None:
    box = SecretBox(settings, sqlite=False)
    with pytest.raises(SecretKeyError, match="JOBYARD_SECRET_KEY"):
        box.seal("hunter2")
    assert not box.key_file.exists()


def test_configured_keys_first_seals_all_open(settings: Settings) -> None:
    old, new = new_key(), new_key()
    sealed_old = SecretBox(settings.replace(secret_key=old), sqlite=False).seal("v")
    box = SecretBox(settings.replace(secret_key=f"{new}, {old}"), sqlite=False)
    assert box.open(sealed_old) == "v"
    assert key_id(new.encode()) in box.seal("v")
    only_new = SecretBox(settings.replace(secret_key=new), sqlite=False)
    with pytest.raises(SecretKeyError, match=key_id(old.encode())):
        only_new.open(sealed_old)


def test_a_key_that_is_not_a_fernet_key_is_refused(settings: Settings) -> None:
    box = SecretBox(settings.replace(secret_key="too-short"), sqlite=False)
    with pytest.raises(ValueError, match="not a Fernet key"):
        box.seal("v")
    assert Fernet(new_key().encode())
