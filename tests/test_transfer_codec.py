"""The stored-object codec: round trips, determinism across chunkings, damage and wrong keys."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standby.errors import ConfigError, IntegrityError
from standby.transfer import codec

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


def _encode(chunks: list[bytes], *, level: int, key: bytes | None,
            salt: bytes) -> tuple[bytes, codec.Encoder]:
    enc = codec.Encoder(level=level, key=key, salt=salt)
    out = b"".join(enc.write(c) for c in chunks) + enc.finish()
    return out, enc


def _decode(stored: bytes, cuts: list[int], *, key: bytes | None, encrypted: bool | None,
            what: str) -> bytes:
    dec = codec.Decoder(key=key, encrypted=encrypted, what=what)
    out = b"".join(dec.plain(_chunks(stored, cuts)))
    assert dec.stored_bytes == len(stored) and dec.sha256 == codec.sha256(stored)
    assert dec.plain_bytes == len(out)
    return out


blobs = st.one_of(st.binary(max_size=3000),
                  st.builds(lambda n, b: b * n, st.integers(0, 300_000), st.binary(min_size=1, max_size=7)))


@settings(max_examples=60, deadline=None)
@given(data=blobs, cuts=st.lists(st.integers(0, 10**7), max_size=6),
       cuts2=st.lists(st.integers(0, 10**7), max_size=6), encrypt=st.booleans(),
       level=st.sampled_from([1, 3, -1]))
def test_round_trip_and_determinism(data: bytes, cuts: list[int], cuts2: list[int],
                                    encrypt: bool, level: int) -> None:
    key = KEY if encrypt else None
    salt = b"s" * codec.SALT_BYTES
    a, enc = _encode(_chunks(data, cuts), level=level, key=key, salt=salt)
    b, _ = _encode(_chunks(data, cuts2), level=level, key=key, salt=salt)
    assert a == b  # the stored bytes depend on the plain bytes alone
    assert enc.sha256 == codec.sha256(a) and enc.stored_bytes == len(a)
    assert enc.plain_bytes == len(data)
    for encrypted in (encrypt, None):
        assert _decode(a, cuts2, key=key, encrypted=encrypted, what="obj") == data


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=1, max_size=5000), pos=st.integers(0, 10**6),
       flip=st.integers(1, 255), encrypt=st.booleans())
def test_any_changed_byte_is_caught(data: bytes, pos: int, flip: int, encrypt: bool) -> None:
    key = KEY if encrypt else None
    stored, sha = codec.encode(data, key=key)
    i = pos % len(stored)
    bad = stored[:i] + bytes([stored[i] ^ flip]) + stored[i + 1:]
    assert codec.sha256(bad) != sha
    if encrypt:  # GCM catches every change, even without the sha256
        with pytest.raises((IntegrityError, ConfigError)):
            codec.decode(bad, key=key, encrypted=True, what="obj")
    # Unencrypted, zstd's own checks may pass a changed header byte: the sha256 catches it.


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=3_000_000).map(lambda b: b + os.urandom(2_500_000)),
       cut=st.integers(1, 10**8), encrypt=st.booleans())
def test_truncation_is_refused(data: bytes, cut: int, encrypt: bool) -> None:
    key = KEY if encrypt else None
    stored, sha = codec.encode(data, key=key)
    short = stored[:cut % len(stored)]
    if encrypt:  # the marked last frame catches a cut anywhere
        with pytest.raises(IntegrityError):
            codec.decode(short, key=KEY, encrypted=True, what="obj")
        return
    # zstd's streaming reader stops quietly: sizes and sha256 are what a reader compares
    dec = codec.Decoder(key=None, encrypted=False, what="obj")
    try:
        got = b"".join(dec.plain([short]))
    except IntegrityError:
        return
    assert (dec.sha256, dec.plain_bytes) != (sha, len(data)) and got != data


def test_truncation_at_a_frame_boundary_is_refused() -> None:
    data = os.urandom(3 * codec.FRAME)
    stored, _ = codec.encode(data, key=KEY)
    first = codec.HEADER_BYTES + 4 + codec.FRAME + 16
    with pytest.raises(IntegrityError, match="truncated"):
        codec.decode(stored[:first], key=KEY, encrypted=True, what="obj")

def test_plain_pieces_stay_small_however_well_it_compressed() -> None:
    stored, _ = codec.encode(bytes(200 << 20))
    assert len(stored) < 100_000
    dec = codec.Decoder(key=None, encrypted=False, what="zeros")
    sizes = [len(p) for p in dec.plain([stored])]
    assert sum(sizes) == 200 << 20 and max(sizes) <= codec.Decoder.OUT


def test_wrong_or_missing_key_is_a_config_error_naming_the_key() -> None:
    stored, _ = codec.encode(b"secret mail", key=KEY)
    with pytest.raises(ConfigError, match=f"another key.*{codec.key_id(OTHER)}"):
        codec.decode(stored, key=OTHER, encrypted=True, what="obj")
    with pytest.raises(ConfigError, match="no target encryption key"):
        codec.decode(stored, key=None, encrypted=None, what="obj")
    with pytest.raises(IntegrityError, match="record says it is not"):
        codec.decode(stored, key=KEY, encrypted=False, what="obj")
    assert b"secret" not in stored


def test_parse_key() -> None:
    assert codec.parse_key("00" * 32, source="k") == bytes(32)
    import base64

    assert codec.parse_key(base64.b64encode(KEY).decode(), source="k") == KEY
    for bad in ("abc", "zz" * 32, "00" * 31):
        with pytest.raises(ConfigError, match="k is not a 256-bit key"):
            codec.parse_key(bad, source="k")
