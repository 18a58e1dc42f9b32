"""How bytes are stored at a target: zstd-compressed, optionally AES-256-GCM encrypted, hashed.

Every object a target holds (a snapshot's stream, a `dir` snapshot's file index, a manifest or a
shipment record) is the output of one `Encoder`:

    plain bytes -> zstd (one frame, level configurable) -> [encryption] -> stored bytes

and its sha256 is taken over the stored bytes, so `verify` can check an object without the
encryption key. With a key, the stored bytes are

    b"SBX1" | key id (8 bytes) | salt (16 bytes) | frame | frame | ...    (the last flagged)

where each frame is a 4-byte big-endian length and the AES-256-GCM ciphertext (with its tag) of
up to `FRAME` compressed bytes. The frame key is HKDF-SHA256 of the configured key and the salt,
so no two objects share one; the nonce is the frame's number; the associated data says whether
it is the last frame, so a stored object cut at a frame boundary is refused as truncated, not
taken for complete. A leaked bucket shows sizes and key names, nothing else.

Invariants (Hypothesis round trips in tests/test_transfer_codec.py):

- `decode(encode(x)) == x` for any chunking of `x` on either side;
- the same plain bytes, level, key and salt give the same stored bytes, however the plain bytes
  were chunked (what a resumed upload relies on: it re-encodes and checks each part it skips);
- any change to stored bytes is caught: by the sha256 and sizes of the record (`verify`, and
  every read), by GCM and the marked last frame (encrypted), by zstd's checksum where it gets
  that far; a wrong key is named as such (`ConfigError`), not as damage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from standby.errors import ConfigError, IntegrityError

MAGIC = b"SBX1"
FRAME = 1 << 20  # compressed bytes per encrypted frame
SALT_BYTES = 16
HEADER_BYTES = len(MAGIC) + 8 + SALT_BYTES
# Plain bytes are fed to zstd in pieces of this size, whatever the caller's chunks: the stored
# bytes then depend on the plain bytes alone.
FEED = 1 << 20
LEVELS = range(-7, 23)


def parse_key(text: str, *, source: str) -> bytes:
    """A 256-bit key from 64 hex digits or the base64 of 32 bytes; `ConfigError` naming
    `source` otherwise."""
    t = text.strip()
    try:
        raw = bytes.fromhex(t) if len(t) == 64 else base64.b64decode(t, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise ConfigError(f"{source} is not a 256-bit key",
                          hint="give 64 hex digits (`openssl rand -hex 32`) or the base64 of 32 "
                               "bytes")
    return raw


def key_id(key: bytes) -> str:
    """A short, non-secret fingerprint of an encryption key (hex of the 8 bytes stored)."""
    return _key_id_bytes(key).hex()


def _key_id_bytes(key: bytes) -> bytes:
    return hashlib.sha256(b"standby-target-key:" + key).digest()[:8]


def _frame_cipher(key: bytes, salt: bytes) -> AESGCM:
    okm = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
               info=b"standby-target-object-v1").derive(key)
    return AESGCM(okm)


def _nonce(n: int) -> bytes:
    return b"\0\0\0\0" + struct.pack(">Q", n)


_LAST, _MORE = b"last", b"more"


class Encoder:
    """Plain bytes in, stored bytes out; `sha256` and sizes once `finish` returned."""

    def __init__(self, *, level: int = 3, key: bytes | None = None,
                 salt: bytes | None = None) -> None:
        # Multi-threaded (one worker per core): zstd compresses while we read the source, and
        # its output is the same for any number of workers, so a resumed upload re-encodes the
        # same bytes even on another machine (single-threaded mode would differ).
        self._z = zstandard.ZstdCompressor(level=level, threads=-1,
                                           write_checksum=True).compressobj()
        self._key = key
        self._salt = salt if salt is not None else os.urandom(SALT_BYTES)
        self._aead = _frame_cipher(key, self._salt) if key is not None else None
        self._pending_plain = bytearray()
        self._pending_z = bytearray()
        self._frames = 0
        self._header_done = False
        self._hash = hashlib.sha256()
        self.plain_bytes = 0
        self.stored_bytes = 0
        self.sha256 = ""

    @property
    def salt(self) -> bytes:
        return self._salt

    def write(self, data: bytes) -> bytes:
        """Take plain bytes; return the stored bytes that are ready (possibly none)."""
        self.plain_bytes += len(data)
        out: list[bytes] = []
        view = memoryview(data)
        if self._pending_plain:
            need = FEED - len(self._pending_plain)
            self._pending_plain += view[:need]
            view = view[need:]
            if len(self._pending_plain) < FEED:
                return b""
            out.append(self._after_zstd(self._z.compress(bytes(self._pending_plain))))
            self._pending_plain.clear()
        while len(view) >= FEED:
            out.append(self._after_zstd(self._z.compress(view[:FEED])))
            view = view[FEED:]
        self._pending_plain += view
        return self._emit(out)

    def finish(self) -> bytes:
        """The last stored bytes; after this `sha256` is the digest of everything returned."""
        out: list[bytes] = []
        if self._pending_plain:
            out.append(self._after_zstd(self._z.compress(bytes(self._pending_plain))))
            self._pending_plain.clear()
        out.append(self._after_zstd(self._z.flush()))
        # Its worker threads end with it now, not whenever a collector reaches it.
        del self._z
        if self._aead is not None:
            out.append(self._seal(bytes(self._pending_z), last=True))
            self._pending_z.clear()
        tail = self._emit(out)
        self.sha256 = self._hash.hexdigest()
        return tail

    def _after_zstd(self, z: bytes) -> bytes:
        if self._aead is None:
            return z
        self._pending_z += z
        out: list[bytes] = []
        # Keep at least one byte back: the frame that ends the object is sealed as the last.
        while len(self._pending_z) > FRAME:
            out.append(self._seal(bytes(self._pending_z[:FRAME]), last=False))
            del self._pending_z[:FRAME]
        return b"".join(out)

    def _seal(self, chunk: bytes, *, last: bool) -> bytes:
        assert self._aead is not None
        ct = self._aead.encrypt(_nonce(self._frames), chunk, _LAST if last else _MORE)
        self._frames += 1
        return struct.pack(">I", len(ct)) + ct

    def _emit(self, out: list[bytes]) -> bytes:
        if self._key is not None and not self._header_done:
            out.insert(0, MAGIC + _key_id_bytes(self._key) + self._salt)
            self._header_done = True
        b = out[0] if len(out) == 1 else b"".join(out)
        self._hash.update(b)
        self.stored_bytes += len(b)
        return b


class Decoder:
    """Stored bytes in, plain bytes out, in pieces of at most `OUT` bytes however well they
    compressed (a sparse database file's zeros inflate a thousandfold). `what` names the object
    in errors; `encrypted` says whether the object's record says it is (the stored bytes must
    agree), None to tell from the stored bytes (catalog objects, whose signature guards them
    either way).

    zstd's streaming reader does not notice a stream cut short; the caller compares
    `stored_bytes`, `sha256` and `plain_bytes` with the object's record once `plain` is done
    (an encrypted object's frames do catch it: the last one is marked)."""

    OUT = 1 << 20

    def __init__(self, *, key: bytes | None, encrypted: bool | None, what: str) -> None:
        self._key = key
        self._encrypted = encrypted
        self._what = what
        if encrypted:
            self._need_key()
        self._src: Iterator[bytes] = iter(())
        self._buf = bytearray()  # stored bytes not yet used
        self._z = bytearray()  # compressed bytes ready for zstd
        self._zpos = 0
        self._aead: AESGCM | None = None
        self._frames = 0
        self._last_seen = False
        self._ended = False
        self._sniffed = False
        self._hash = hashlib.sha256()
        self.stored_bytes = 0
        self.plain_bytes = 0

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def _need_key(self) -> None:
        if self._key is None:
            raise ConfigError(f"{self._what} is encrypted and no target encryption key is "
                              "configured", hint="set target.encryption_key, or "
                              "STANDBY_TARGET_KEY (one of the two), to the key the primary "
                              "ships with")

    def plain(self, stored: Iterable[bytes]) -> Iterator[bytes]:
        """The plain bytes of `stored` (the whole object's stored bytes, in any chunks)."""
        self._src = iter(stored)
        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BufferedReader(_Pull(self._compressed), FEED), read_size=FEED,
            read_across_frames=False)
        try:
            while out := reader.read(self.OUT):
                self.plain_bytes += len(out)
                yield out
        except zstandard.ZstdError as e:
            raise IntegrityError(f"{self._what} does not decompress ({e}): it was changed or "
                                 "damaged", hint="ship that snapshot again") from e
        if self._compressed(1) or self._z[self._zpos:]:
            raise IntegrityError(f"{self._what} has bytes after its end")
        if self._encrypted and not self._last_seen:
            raise IntegrityError(f"{self._what} is truncated (its encrypted frames do not end "
                                 "with the last one)", hint="ship that snapshot again")

    def _stored(self) -> bool:
        """Pull one more stored chunk into `_buf`; False at the end."""
        for chunk in self._src:
            if chunk:
                self._hash.update(chunk)
                self.stored_bytes += len(chunk)
                self._buf += chunk
                return True
        return False

    def _compressed(self, n: int) -> bytes:
        """Up to `n` compressed bytes (fewer only at the end)."""
        while len(self._z) - self._zpos < n and not self._ended:
            self._fill()
        out = bytes(self._z[self._zpos:self._zpos + n])
        self._zpos += len(out)
        if self._zpos > (1 << 22):
            del self._z[:self._zpos]
            self._zpos = 0
        return out

    def _fill(self) -> None:
        if not self._sniffed:
            self._sniff()
        if not self._encrypted:
            if self._buf or self._stored():
                self._z += self._buf
                self._buf.clear()
            else:
                self._ended = True
            return
        if self._aead is None:
            while len(self._buf) < HEADER_BYTES:
                if not self._stored():
                    raise IntegrityError(f"{self._what} is truncated (no full header)",
                                         hint="ship that snapshot again")
            self._open_header()
        while True:
            if len(self._buf) >= 4:
                (n,) = struct.unpack(">I", self._buf[:4])
                if len(self._buf) >= 4 + n:
                    ct = bytes(self._buf[4:4 + n])
                    del self._buf[:4 + n]
                    self._z += self._open_frame(ct)
                    return
            if not self._stored():
                if self._buf:
                    raise IntegrityError(f"{self._what} is truncated (it ends inside a frame)",
                                         hint="ship that snapshot again")
                self._ended = True
                return

    def _sniff(self) -> None:
        """Tell from the first bytes whether the object is sealed; it must agree with its
        record."""
        while len(self._buf) < len(MAGIC) and self._stored():
            pass
        if len(self._buf) < len(MAGIC):
            raise IntegrityError(f"{self._what} is truncated (only {self.stored_bytes} bytes)",
                                 hint="ship that snapshot again")
        sealed = self._buf[:len(MAGIC)] == MAGIC
        if self._encrypted is None:
            self._encrypted = sealed
            if sealed:
                self._need_key()
        elif sealed and not self._encrypted:
            raise IntegrityError(f"{self._what} is encrypted, and its record says it is not",
                                 hint="the record or the object was changed")
        self._sniffed = True

    def _open_header(self) -> None:
        head = bytes(self._buf[:HEADER_BYTES])
        del self._buf[:HEADER_BYTES]
        if head[:4] != MAGIC:
            raise IntegrityError(f"{self._what} is not an encrypted standby object",
                                 hint="it was damaged, or written without encryption")
        assert self._key is not None
        theirs = head[4:12]
        if theirs != _key_id_bytes(self._key):
            raise ConfigError(f"{self._what} was encrypted with another key (key id "
                              f"{theirs.hex()}; the configured key is {key_id(self._key)})",
                              hint="set target.encryption_key or STANDBY_TARGET_KEY to the "
                                   "key the primary ships with")
        self._aead = _frame_cipher(self._key, head[12:])

    def _open_frame(self, ct: bytes) -> bytes:
        assert self._aead is not None
        if self._last_seen:
            raise IntegrityError(f"{self._what} has bytes after its last frame")
        for aad, last in ((_MORE, False), (_LAST, True)):
            try:
                plain = self._aead.decrypt(_nonce(self._frames), ct, aad)
            except InvalidTag:
                continue
            self._frames += 1
            self._last_seen = last
            return plain
        raise IntegrityError(f"{self._what} does not decrypt: frame {self._frames} was changed "
                             "or damaged after it was written", hint="ship that snapshot again")


class _Pull(io.RawIOBase):
    """A readable file over a function that returns up to n bytes (zstd's stream reader)."""

    def __init__(self, pull: Callable[[int], bytes]) -> None:
        self._pull = pull

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._pull(len(b))
        b[:len(data)] = data
        return len(data)


def encode(data: bytes, *, level: int = 3, key: bytes | None = None,
           salt: bytes | None = None) -> tuple[bytes, str]:
    """A small object in one go: (stored bytes, their sha256)."""
    enc = Encoder(level=level, key=key, salt=salt)
    out = enc.write(data) + enc.finish()
    return out, enc.sha256


def decode(stored: bytes, *, key: bytes | None, encrypted: bool | None, what: str) -> bytes:
    """A small object in one go (a catalog document: its signature catches a short one)."""
    return b"".join(Decoder(key=key, encrypted=encrypted, what=what).plain([stored]))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
