"""The redactor (shared/redact.py), at the boundary where text from outside meets secrets.

The rule it keeps, checked here with generated secrets and text:

- no run of 8 characters of a registered secret survives, as sent, percent-encoded (either hex
  case, ``quote``/``quote_plus``), JSON-escaped (with or without ``\\/``) or repr-escaped;
- text from a server is cut first, then redacted: a cut that splits a secret leaves none of its
  first 4 or more characters at the end;
- text that holds no piece of a secret is left as it is.
"""

from __future__ import annotations

import json
import re
import unicodedata
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.redact import (
    FRAGMENT,
    REDACTED,
    TAIL_FRAGMENT,
    RedactingWriter,
    Redactor,
    redact_url,
)

SECRET_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789/+=%&\"\\-_~ éü€"
ENCODINGS = {
    "raw": lambda s: s,
    "quote": lambda s: quote(s, safe=""),
    "quote_path": quote,
    "quote_plus": quote_plus,
    "quote_lower_hex": lambda s: re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(s, safe="")),
    "json": lambda s: json.dumps(s)[1:-1],
    "json_utf8": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "json_escaped_slash": lambda s: json.dumps(s)[1:-1].replace("/", "\\/"),
    "repr": lambda s: repr(s)[1:-1],
}

secrets_strategy = st.lists(
    st.text(alphabet=SECRET_ALPHABET, min_size=FRAGMENT, max_size=48).filter(lambda s: s.strip()),
    min_size=1, max_size=3,
)


def forms(secret: str) -> set[str]:
    return {encode(secret) for encode in ENCODINGS.values()}


def pieces(secret: str, size: int) -> set[str]:
    out: set[str] = set()
    for form in forms(secret):
        out.update(form[i:i + size] for i in range(len(form) - size + 1))
    return out


def assert_nothing_usable(output: str, secrets: list[str]) -> None:
    for secret in secrets:
        for piece in pieces(secret, FRAGMENT):
            assert piece not in output, f"{piece!r} of {secret!r} survived in {output!r}"


def redactor_with(secrets: list[str]) -> Redactor:
    redactor = Redactor()
    redactor.register_secret(*secrets)
    return redactor


@st.composite
def text_with_secrets(draw: st.DrawFn) -> tuple[str, list[str]]:
    """Arbitrary text with the secrets put in at arbitrary places, each in an arbitrary form."""
    secrets = draw(secrets_strategy)
    parts = [draw(st.text(max_size=40))]
    for _ in range(draw(st.integers(1, 5))):
        secret = draw(st.sampled_from(secrets))
        encode = ENCODINGS[draw(st.sampled_from(sorted(ENCODINGS)))]
        parts += [encode(secret), draw(st.text(max_size=40))]
    return "".join(parts), secrets


@given(text_with_secrets())
@settings(max_examples=300)
def test_no_piece_of_a_secret_survives_in_any_form(case):
    text, secrets = case
    assert_nothing_usable(redactor_with(secrets).redact_text(text), secrets)


@given(text_with_secrets(), st.integers(1, 120), st.integers(0, 60))
@settings(max_examples=300)
def test_text_from_outside_is_cut_then_redacted_leaving_no_usable_fragment_at_the_cut(case, limit, shift):
    text, secrets = case
    # Put the cut across a secret: drop characters from the front so that one lands on it.
    text = text[shift:] if shift < len(text) else text
    out = redactor_with(secrets).untrusted(text, limit)
    assert_nothing_usable(out, secrets)
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs") for c in out)
    if out.endswith("..."):
        kept = out[:-3]
        for secret in secrets:
            for form in forms(secret):
                for n in range(TAIL_FRAGMENT, len(form) + 1):
                    assert not kept.endswith(form[:n]), f"the cut left {form[:n]!r} of {secret!r}"
    else:
        assert len(text) <= limit * 2 + 64  # only a short text can come back whole


@given(secrets_strategy, st.text(alphabet="BCDFGHIJKLMNOPQUVWXYZ0123456789 ,.;:!?()[]{}<>\u00c0", max_size=300))
def test_text_holding_no_piece_of_a_secret_is_left_as_it_is(secrets, text):
    assume(not any(piece in text for s in secrets for piece in pieces(s, FRAGMENT)))
    assume(not any(s in text for s in secrets))
    assert redactor_with(secrets).redact_text(text) == text


@given(secrets_strategy, st.integers(0, 7))
def test_a_secret_cut_short_by_whoever_echoed_it_is_caught_from_8_characters(secrets, cut):
    secret = secrets[0]
    assume(len(secret) - cut >= FRAGMENT)
    redactor = redactor_with(secrets)
    out = redactor.redact_text(f"token {secret[: len(secret) - cut]}... is not valid")
    assert out.startswith("token ") and out.endswith("... is not valid") and REDACTED in out
    assert_nothing_usable(out, secrets)


def test_a_sas_url_registers_its_signature_and_leaves_the_rest_readable():
    redactor = Redactor()
    sig = "c2VjcmV0LXNp/Z25hdHVyZQ+=="
    url = ("https://acct.blob.core.windows.net/exports?sv=2024-05-04&sp=rcwl&se=2030-01-01T00:00:00Z"
           f"&sig={quote(sig, safe='')}")
    redactor.register_url(url)
    shown = redactor.redact_text(f"GET {url} failed; signature {sig}; {json.dumps(sig)}")
    assert sig not in shown and quote(sig, safe="") not in shown and "c2VjcmV0" not in shown
    assert "sv=2024-05-04&sp=rcwl&se=2030-01-01T00:00:00Z" in shown
    assert "acct.blob.core.windows.net/exports" in shown
    assert redactor.redact_text("window 2030-01-01T00:00:00Z of exports/2184.13699.1.track.csv") == \
        "window 2030-01-01T00:00:00Z of exports/2184.13699.1.track.csv"


def test_a_connection_string_registers_its_key_not_its_names():
    redactor = Redactor()
    key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    redactor.register_connection_string(
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key};EndpointSuffix=core.windows.net")
    assert redactor.redact_text(f"key {key[:30]}") == f"key {REDACTED}"
    assert redactor.redact_text("AccountName=acct;EndpointSuffix=core.windows.net") == \
        "AccountName=acct;EndpointSuffix=core.windows.net"


@pytest.mark.parametrize(("text", "shown"), [
    ("GET https://a/c?sv=1&sig=abc%2Bdef&sp=r", "GET https://a/c?sv=1&sig=REDACTED&sp=r"),
    ("https%3A%2F%2Fa%2Fc%3Fsig%3Dabc%252B", "https%3A%2F%2Fa%2Fc%3Fsig%3DREDACTED"),
    ("AccountName=a;AccountKey=abc/def==;EndpointSuffix=x", "AccountName=a;AccountKey=REDACTED;EndpointSuffix=x"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "Authorization: Bearer REDACTED"),
    ("missing or invalid bearer token", "missing or invalid bearer token"),
    ("https://user:p%40ss@host/x", "https://user:REDACTED@host/x"),
])
def test_secrets_nobody_registered_are_recognised_by_their_shape(text, shown):
    assert Redactor().redact_text(text) == shown


def test_urls_are_shown_with_their_credentials_replaced():
    assert redact_url("https://u:pw@acct.blob.core.windows.net/?sv=1&sig=a%2Bb&code=k") == \
        "https://u:REDACTED@acct.blob.core.windows.net/?sv=1&sig=REDACTED&code=REDACTED"
    assert redact_url("https://acct.blob.core.windows.net") == "https://acct.blob.core.windows.net"


def test_remote_text_loses_control_characters_and_is_cut():
    out = Redactor().untrusted("a\x1b[2Jb\u202ec\r\nd\u2028e" + "z" * 500, 20)
    assert out == "a[2Jbc  dezzzzzzzzzzzzzzz"[:20] + "..."
    assert Redactor().untrusted(b"\xff\xfebad \x00bytes") == "\ufffd\ufffdbad bytes"


def test_the_cli_writer_scrubs_what_goes_through_it(tmp_path):
    import io

    from shared import redact

    secret = "Wr7t/+Kq-0123-9981zX"
    redact.register_secret(secret)
    sink = io.StringIO()
    writer = RedactingWriter(sink)
    print(f"error: {secret}", file=writer)
    writer.writelines([f"{quote(secret)}\n"])
    assert sink.getvalue() == f"error: {REDACTED}\n{REDACTED}\n"
