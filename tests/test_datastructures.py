"""Headers (case-insensitive, multi-value), QueryParams (multi-value) and Address."""

from __future__ import annotations

import json

import pytest

from spikard import Address, Headers, InvalidBody, QueryParams, Request


class TestHeaders:
    def test_case_insensitive_lookup(self) -> None:
        headers = Headers([("Content-Type", "text/plain"), ("X-Thing", "1")])
        assert headers["content-type"] == "text/plain"
        assert headers["CONTENT-TYPE"] == "text/plain"
        assert headers.get("x-THING") == "1"
        assert "X-THING" in headers
        assert "missing" not in headers

    def test_repeated_fields(self) -> None:
        headers = Headers([("Set-Cookie", "a=1"), ("X", "y"), ("set-cookie", "b=2")])
        assert headers["set-cookie"] == "a=1"  # the first value
        assert headers.getlist("SET-COOKIE") == ["a=1", "b=2"]
        assert headers.getlist("absent") == []
        assert len(headers) == 2  # distinct names
        assert list(headers) == ["set-cookie", "x"]  # lower-cased, in first-seen order

    def test_multi_items_keep_original_names_and_order(self) -> None:
        pairs = [("Set-Cookie", "a=1"), ("X", "y"), ("set-cookie", "b=2")]
        assert Headers(pairs).multi_items() == pairs

    def test_get_default(self) -> None:
        headers = Headers()
        assert headers.get("x") is None
        assert headers.get("x", "fallback") == "fallback"
        with pytest.raises(KeyError):
            headers["x"]

    def test_non_string_keys_are_not_contained(self) -> None:
        headers = Headers([("a", "1")])
        keys: list[object] = [1, None, b"a"]
        assert not any(key in headers for key in keys)

    def test_mapping_views(self) -> None:
        headers = Headers([("A", "1"), ("b", "2"), ("a", "3")])
        assert dict(headers) == {"a": "1", "b": "2"}
        assert list(headers.items()) == [("a", "1"), ("b", "2")]
        assert list(headers.values()) == ["1", "2"]

    def test_from_raw_decodes_latin1(self) -> None:
        headers = Headers.from_raw([(b"X-Name", b"caf\xe9"), (b"host", b"h")])
        assert headers["x-name"] == "café"
        assert headers.multi_items() == [("X-Name", "café"), ("host", "h")]

    def test_equality_ignores_name_case_and_order(self) -> None:
        assert Headers([("A", "1"), ("B", "2")]) == Headers([("b", "2"), ("a", "1")])
        assert Headers([("A", "1")]) != Headers([("A", "2")])
        assert Headers([("A", "1"), ("A", "2")]) != Headers([("A", "1")])

    def test_unhashable(self) -> None:
        with pytest.raises(TypeError):
            hash(Headers())

    def test_repr(self) -> None:
        assert repr(Headers([("A", "1")])) == "Headers([('A', '1')])"


class TestQueryParams:
    def test_parse_multi_value(self) -> None:
        params = QueryParams.parse("a=1&b=2&a=3")
        assert params["a"] == "1"
        assert params.getlist("a") == ["1", "3"]
        assert params.get("b") == "2"
        assert len(params) == 2
        assert params.multi_items() == [("a", "1"), ("b", "2"), ("a", "3")]

    def test_blank_values_are_kept(self) -> None:
        params = QueryParams.parse("a=&b&c=1")
        assert params.multi_items() == [("a", ""), ("b", ""), ("c", "1")]

    def test_percent_and_plus_decoding(self) -> None:
        params = QueryParams.parse("q=hello+world&x=%2F%26%3D&caf%C3%A9=ok")
        assert params["q"] == "hello world"
        assert params["x"] == "/&="
        assert params["café"] == "ok"

    def test_case_sensitive(self) -> None:
        params = QueryParams.parse("A=1&a=2")
        assert params["A"] == "1"
        assert params["a"] == "2"
        assert params.getlist("a") == ["2"]

    def test_empty(self) -> None:
        params = QueryParams.parse("")
        assert len(params) == 0
        assert params.get("x") is None
        assert params.get("x", "d") == "d"

    def test_equality(self) -> None:
        assert QueryParams.parse("a=1&b=2") == QueryParams.parse("b=2&a=1")
        assert QueryParams.parse("a=1") != QueryParams.parse("A=1")

    def test_repr(self) -> None:
        assert repr(QueryParams.parse("a=1")) == "QueryParams([('a', '1')])"


class TestAddress:
    def test_fields_and_tuple_behaviour(self) -> None:
        address = Address("127.0.0.1", 8080)
        assert address.host == "127.0.0.1"
        assert address.port == 8080
        host, port = address
        assert (host, port) == ("127.0.0.1", 8080)
        assert address == ("127.0.0.1", 8080)
        assert hash(address) == hash(("127.0.0.1", 8080))


class TestRequest:
    def test_target_split_and_decoding(self) -> None:
        request = Request("GET", "/a%20b/c?x=1&x=2", Headers([("Host", "example.com:81")]))
        assert request.path == "/a b/c"
        assert request.raw_path == "/a%20b/c"
        assert request.query_string == "x=1&x=2"
        assert request.query_params.getlist("x") == ["1", "2"]
        assert request.url == "http://example.com:81/a%20b/c?x=1&x=2"

    def test_cookies(self) -> None:
        headers = Headers([("cookie", 'a=1; b="two"'), ("Cookie", "c=3")])
        assert dict(Request("GET", "/", headers).cookies) == {"a": "1", "b": "two", "c": "3"}

    def test_malformed_cookie_header_yields_no_cookies(self) -> None:
        headers = Headers([("cookie", 'a=1; b="unterminated')])
        cookies = Request("GET", "/", headers).cookies
        assert "b" not in cookies

    async def test_body_text_json(self) -> None:
        request = Request("POST", "/", Headers(), body='{"k": "é"}'.encode())
        assert await request.body() == '{"k": "é"}'.encode()
        assert await request.text() == '{"k": "é"}'
        assert await request.json() == {"k": "é"}
        with pytest.raises(InvalidBody, match="Invalid JSON body") as caught:
            await Request("POST", "/", Headers(), body=b"{").json()
        assert isinstance(caught.value, ValueError)  # code that caught ValueError still works
        assert caught.value.status_code == 400
        assert isinstance(caught.value.__cause__, json.JSONDecodeError)
