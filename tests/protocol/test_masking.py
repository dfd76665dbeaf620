"""Unmasking: the pure-Python formulations and the accelerated one agree with the definition."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spikard.protocol import masking


def reference(payload: bytes, key: bytes) -> bytes:
    return bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))


# Both sides of the size where the pure-Python path switches formulation, and odd tails.
@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 1023, 1024, 1025, 1027, 4096, 65537])
def test_every_size_matches_the_definition(size: int) -> None:
    payload = bytes(index * 7 % 256 for index in range(size))
    key = b"\x9a\x01\xff\x37"
    expected = reference(payload, key)
    assert masking.unmask_python(payload, key) == expected
    assert masking.unmask_python(bytearray(payload), bytearray(key)) == expected
    assert masking.unmask(payload, key) == expected


@given(st.binary(max_size=3000), st.binary(min_size=4, max_size=4))
def test_unmasking_twice_is_the_identity(payload: bytes, key: bytes) -> None:
    assert masking.unmask_python(masking.unmask_python(payload, key), key) == payload
    assert masking.unmask(payload, key) == reference(payload, key)


def test_results_are_bytes() -> None:
    assert type(masking.unmask_python(bytearray(b"abcdef"), b"1234")) is bytes
    assert type(masking.unmask(bytearray(b"abcdef"), b"1234")) is bytes
