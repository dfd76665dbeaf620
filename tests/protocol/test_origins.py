"""OriginMatcher: the one origin syntax for CORS and WebSocket handshakes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spikard.protocol.origins import OriginMatcher, normalize_origin

labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hosts = st.lists(labels, min_size=1, max_size=4).map(".".join)


@pytest.mark.parametrize(
    ("origin", "normalized"),
    [
        ("HTTPS://App.Example.COM", "https://app.example.com"),
        ("https://app.example.com/", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://app.example.com:80", "http://app.example.com"),
        ("http://app.example.com:443", "http://app.example.com:443"),
        ("http://[::1]:80", "http://[::1]"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("null", "null"),
    ],
)
def test_normalize_origin(origin: str, normalized: str) -> None:
    assert normalize_origin(origin) == normalized


def test_exact_origins_match_only_themselves() -> None:
    matcher = OriginMatcher(["https://app.example.com", "http://127.0.0.1:8000"])
    assert matcher("https://app.example.com")
    assert matcher("https://APP.example.com:443")
    assert matcher("http://127.0.0.1:8000")
    assert not matcher("http://app.example.com")  # another scheme
    assert not matcher("https://app.example.com:8443")  # another port
    assert not matcher("https://app.example.com.evil.test")
    assert not matcher("https://evilapp.example.com")
    assert not matcher("null")
    assert not matcher.allows_any


def test_subdomain_patterns_need_a_label_and_keep_scheme_and_port() -> None:
    matcher = OriginMatcher(["https://*.example.com"])
    assert matcher("https://a.example.com")
    assert matcher("https://a.b.example.com")
    assert not matcher("https://example.com")
    assert not matcher("http://a.example.com")
    assert not matcher("https://a.example.com:8443")
    assert not matcher("https://aexample.com")
    assert not matcher("https://a.example.com.evil.test")
    assert not matcher("https://user@a.example.com")


def test_star_and_null() -> None:
    assert OriginMatcher(["*"])("https://anything.test")
    assert OriginMatcher(["*"]).allows_any
    assert OriginMatcher(["null"])("null")


@pytest.mark.parametrize(
    "entry",
    [
        "example.com",
        "https://example.com/app",
        "https://example.com?x=1",
        "https://a*.example.com",
        "https://*",
        "https://ex*ample.com",
        "https://user@example.com",
        "https://example.com#top",
    ],
)
def test_entries_that_are_not_origins_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match=r"origin|subdomains"):
        OriginMatcher([entry])


def test_a_single_string_is_refused() -> None:
    with pytest.raises(TypeError, match="not a string"):
        OriginMatcher("https://example.com")


@given(hosts, hosts, st.sampled_from(["http", "https"]))
def test_a_pattern_matches_exactly_the_hosts_below_its_domain(
    domain: str, candidate: str, scheme: str
) -> None:
    matcher = OriginMatcher([f"{scheme}://*.{domain}"])
    below = candidate.endswith("." + domain)
    assert matcher(f"{scheme}://{candidate}") is below
    assert not matcher(f"{'https' if scheme == 'http' else 'http'}://{candidate}")
    assert matcher(f"{scheme}://{candidate}.{domain}")


@given(hosts, hosts)
def test_an_exact_origin_matches_only_its_own_host(allowed: str, candidate: str) -> None:
    matcher = OriginMatcher([f"https://{allowed}"])
    assert matcher(f"https://{candidate}") is (candidate == allowed)
