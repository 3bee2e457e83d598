"""Sequence keys: every sequence has its own rows, and a key says which sequence it is."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.sequence import Sequence, parse_state_key

ids = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
names = st.from_regex(r"[a-z0-9][a-z0-9-]{0,8}", fullmatch=True)
backfills = st.none() | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,8}", fullmatch=True)
sequences = st.builds(Sequence, names, backfills)


def test_the_default_live_sequence_keeps_the_key_of_earlier_versions():
    assert Sequence().state_key("2184", "77") == "2184.77"
    assert Sequence().folder("exports/acme") == "exports/acme"


def test_named_and_backfill_keys_and_folders():
    assert Sequence("prod-eu").state_key("2184", "77") == "2184.77~prod-eu"
    assert Sequence("default", "day1").state_key("2184", "77") == "2184.77~default~day1"
    assert Sequence("default", "day1").folder("exports/acme/") == "exports/acme/_backfill/day1"
    assert Sequence("default", "day1").folder("") == "_backfill/day1"


@pytest.mark.parametrize("name", ["", "Prod", "a.b", "a~b", "-a", "x" * 33, "a/b"])
def test_bad_names_are_refused(name):
    with pytest.raises(ValueError, match="destination name"):
        Sequence(name)


@pytest.mark.parametrize("backfill", ["", "a~b", "a.b", "_a", "a/b", "x" * 65])
def test_bad_backfill_ids_are_refused(backfill):
    with pytest.raises(ValueError, match="backfill id"):
        Sequence("default", backfill)


@given(ids, ids, sequences)
def test_a_key_names_its_sequence(integration, action, sequence):
    assert parse_state_key(sequence.state_key(integration, action)) == (f"{integration}.{action}", sequence)


@given(ids, ids, sequences, ids, ids, sequences)
def test_two_sequences_never_share_a_key(i1, a1, s1, i2, a2, s2):
    if (i1, a1, s1) != (i2, a2, s2):
        assert s1.state_key(i1, a1) != s2.state_key(i2, a2)


@pytest.mark.parametrize("key", ["destinations", "a.b.c", "a.b~Bad", "a.b~x~y~z", ".b", "a."])
def test_keys_that_are_not_type_rows(key):
    assert parse_state_key(key) is None
