"""The rules of secret values that need no key: recognising, showing, masking output."""

from __future__ import annotations

import pytest

from jobyard.domain.secrets import (
    MASK,
    OutputMasker,
    mask_text,
    masked,
    needles,
    sealed_in,
    secret_names,
)

SEALED = "jysec:1:abcd1234:gAAAA-token"


def test_masked_hides_sealed_values_at_any_depth() -> None:
    value = {"A": "plain", "B": SEALED, "list": ["x", SEALED, {"deep": SEALED}]}
    assert masked(value) == {"A": "plain", "B": MASK, "list": ["x", MASK, {"deep": MASK}]}
    assert sealed_in(value) == [SEALED, SEALED, SEALED]
    assert secret_names({"A": "plain", "B": SEALED}) == ["B"]
    assert masked(None) is None and masked(3) == 3


def test_needles_take_each_line_and_skip_short_ones() -> None:
    assert needles(["hunter2", "ab", "line-one\nline-two\r\nx"]) == (
        "line-one\nline-two\r\nx",
        "line-one",
        "line-two",
        "hunter2",
    )


def test_mask_text_longest_first() -> None:
    secrets = needles(["abc", "abcdef"])
    assert mask_text("xx abcdef yy abc", secrets) == f"xx {MASK} yy {MASK}"


@pytest.mark.parametrize("cut", range(1, 22))
def test_a_secret_cut_by_a_chunk_boundary_is_masked(cut: int) -> None:
    text = "before s3cr3t-canary after\n"
    masker = OutputMasker(needles(["s3cr3t-canary"]))
    sent = masker.feed(text[:cut]) + masker.feed(text[cut:]) + masker.flush()
    assert sent == f"before {MASK} after\n"


def test_output_without_secrets_passes_unchanged_and_unheld() -> None:
    masker = OutputMasker(())
    assert masker.feed("s3cr") == "s3cr"
    masker = OutputMasker(needles(["s3cr3t"]))
    assert masker.feed("plain text\n") == "plain text\n"
    assert masker.feed("ends with s3") == "ends with "
    assert masker.flush() == "s3"
