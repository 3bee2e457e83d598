"""The track ``event`` slug (docs/file-format.md, "`event` and `event_text`")."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.slug import slugify_event


def _hashed(name: str) -> str:
    return "event_" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Order Completed", "order_completed"),
        ("ÜBER Event", "uber_event"),
        ("Café Crème Brûlée", "cafe_creme_brulee"),
        ("signup", "signup"),
        ("Product Viewed v2", "product_viewed_v2"),
        # NFKD folds ligatures, full-width letters and circled digits
        ("\ufb01le \uff21dded \u2460", "file_added_1"),
        ("Straße", "stra_e"),  # ß has no decomposition: it is a separator like any other
    ],
)
def test_a_latin_name_becomes_its_lowercase_ascii_words_joined_by_underscores(name: str, slug: str) -> None:
    assert slugify_event(name) == slug


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Order   Completed", "order_completed"),
        ("order--completed__now", "order_completed_now"),
        ("a .-_/ b", "a_b"),
        ("Order\tCompleted\n", "order_completed"),
        ("Order \u2028 Completed", "order_completed"),
    ],
)
def test_every_run_of_separators_becomes_one_underscore(name: str, slug: str) -> None:
    assert slugify_event(name) == slug


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("  Order Completed  ", "order_completed"),
        ("__order_completed__", "order_completed"),
        ("!!! Sale !!!", "sale"),
        ("-1", "1"),
    ],
)
def test_leading_and_trailing_separators_are_trimmed(name: str, slug: str) -> None:
    assert slugify_event(name) == slug


@pytest.mark.parametrize("name", ["注文完了", "Заказ", "🎉", "🎉🎉 !!", "", "   ", "___", "ß"])
def test_a_name_with_nothing_left_is_event_and_8_hex_of_its_sha256(name: str) -> None:
    assert slugify_event(name) == _hashed(name)


def test_a_known_non_latin_name_has_the_documented_hash() -> None:
    assert slugify_event("注文完了") == "event_" + hashlib.sha256("注文完了".encode()).hexdigest()[:8]
    assert slugify_event("") == "event_e3b0c442"  # sha256 of nothing


def test_a_mixed_name_keeps_its_latin_part() -> None:
    assert slugify_event("Заказ Order 🎉") == "order"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_a_slug_is_always_lowercase_ascii_words_or_a_hash(name: str) -> None:
    slug = slugify_event(name)
    assert re.fullmatch(r"[a-z0-9]+(?:_[a-z0-9]+)*", slug)
    assert slugify_event(name) == slug  # a pure function
