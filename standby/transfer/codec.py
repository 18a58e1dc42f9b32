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
- any change to stored bytes is caught: by the sha256 (`verify`), by GCM (encrypted), or by zstd
  and the frame structure; a wrong key is named as such (`ConfigError`), not as damage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct

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
        self._z = zstandard.ZstdCompressor(level=level, write_checksum=True).compressobj()
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
        self._pending_plain += data
        out = bytearray()
        while len(self._pending_plain) >= FEED:
            piece = bytes(self._pending_plain[:FEED])
            del self._pending_plain[:FEED]
            out += self._after_zstd(self._z.compress(piece))
        return self._emit(out)

    def finish(self) -> bytes:
        """The last stored bytes; after this `sha256` is the digest of everything returned."""
        out = bytearray()
        if self._pending_plain:
            out += self._after_zstd(self._z.compress(bytes(self._pending_plain)))
            self._pending_plain.clear()
        out += self._after_zstd(self._z.flush())
        if self._aead is not None:
            out += self._seal(bytes(self._pending_z), last=True)
            self._pending_z.clear()
        tail = self._emit(out)
        self.sha256 = self._hash.hexdigest()
        return tail

    def _after_zstd(self, z: bytes) -> bytes:
        if self._aead is None:
            return z
        self._pending_z += z
        out = bytearray()
        # Keep at least one byte back: the frame that ends the object is sealed as the last.
        while len(self._pending_z) > FRAME:
            out += self._seal(bytes(self._pending_z[:FRAME]), last=False)
            del self._pending_z[:FRAME]
        return bytes(out)

    def _seal(self, chunk: bytes, *, last: bool) -> bytes:
        assert self._aead is not None
        ct = self._aead.encrypt(_nonce(self._frames), chunk, _LAST if last else _MORE)
        self._frames += 1
        return struct.pack(">I", len(ct)) + ct

    def _emit(self, out: bytearray) -> bytes:
        if self._key is not None and not self._header_done:
            out[:0] = MAGIC + _key_id_bytes(self._key) + self._salt
            self._header_done = True
        b = bytes(out)
        self._hash.update(b)
        self.stored_bytes += len(b)
        return b


class Decoder:
    """Stored bytes in, plain bytes out. `what` names the object in errors; `encrypted` says
    whether the object's record says it is (the stored bytes must agree), None to tell from the
    stored bytes (catalog objects, whose signature guards them either way)."""

    def __init__(self, *, key: bytes | None, encrypted: bool | None, what: str) -> None:
        self._key = key
        self._encrypted = encrypted
        self._what = what
        if encrypted:
            self._need_key()
        self._z = zstandard.ZstdDecompressor().decompressobj()
        self._sniff = bytearray()
        self._buf = bytearray()
        self._aead: AESGCM | None = None
        self._frames = 0
        self._last_seen = False
        self._hash = hashlib.sha256()
        self.stored_bytes = 0

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def _need_key(self) -> None:
        if self._key is None:
            raise ConfigError(f"{self._what} is encrypted and no target encryption key is "
                              "configured", hint="set target.encryption_key, or "
                              "STANDBY_TARGET_KEY (one of the two), to the key the primary "
                              "ships with")

    def feed(self, stored: bytes) -> bytes:
        self._hash.update(stored)
        self.stored_bytes += len(stored)
        if self._encrypted is None:
            self._sniff += stored
            if len(self._sniff) < len(MAGIC):
                return b""
            self._encrypted = self._sniff[:len(MAGIC)] == MAGIC
            if self._encrypted:
                self._need_key()
            stored, self._sniff = bytes(self._sniff), bytearray()
        if not self._encrypted:
            if stored[:len(MAGIC)] == MAGIC and self.stored_bytes == len(stored):
                raise IntegrityError(f"{self._what} is encrypted, and its record says it is not",
                                     hint="the record or the object was changed")
            return self._unzstd(stored)
        self._buf += stored
        out = bytearray()
        if self._aead is None:
            if len(self._buf) < HEADER_BYTES:
                return b""
            self._open_header()
        while len(self._buf) >= 4:
            (n,) = struct.unpack(">I", self._buf[:4])
            if len(self._buf) < 4 + n:
                break
            ct = bytes(self._buf[4:4 + n])
            del self._buf[:4 + n]
            out += self._unzstd(self._open_frame(ct))
        return bytes(out)

    def finish(self) -> bytes:
        """Raise `IntegrityError` unless the object ended where it should."""
        if self._encrypted is None or self._sniff:
            raise IntegrityError(f"{self._what} is truncated (only {self.stored_bytes} bytes)",
                                 hint="ship that snapshot again")
        if self._encrypted:
            if self._aead is None or self._buf or not self._last_seen:
                raise IntegrityError(f"{self._what} is truncated or damaged (its encrypted "
                                     "frames do not end with the last one)",
                                     hint="ship that snapshot again")
        if not self._z.eof:
            raise IntegrityError(f"{self._what} is truncated (its zstd frame does not end)",
                                 hint="ship that snapshot again")
        return b""

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

    def _unzstd(self, z: bytes) -> bytes:
        if not z:
            return b""
        if self._z.eof:
            raise IntegrityError(f"{self._what} has bytes after its end")
        try:
            out = self._z.decompress(z)
        except zstandard.ZstdError as e:
            raise IntegrityError(f"{self._what} does not decompress ({e}): it was changed or "
                                 "damaged", hint="ship that snapshot again") from e
        if self._z.eof and self._z.unused_data:
            raise IntegrityError(f"{self._what} has bytes after its end")
        return out


def encode(data: bytes, *, level: int = 3, key: bytes | None = None,
           salt: bytes | None = None) -> tuple[bytes, str]:
    """A small object in one go: (stored bytes, their sha256)."""
    enc = Encoder(level=level, key=key, salt=salt)
    out = enc.write(data) + enc.finish()
    return out, enc.sha256


def decode(stored: bytes, *, key: bytes | None, encrypted: bool | None, what: str) -> bytes:
    dec = Decoder(key=key, encrypted=encrypted, what=what)
    out = dec.feed(stored)
    return out + dec.finish()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
