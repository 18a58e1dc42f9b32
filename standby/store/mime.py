"""Fast extraction of the fields a mail server indexes, from raw RFC 5322 / MIME message bytes.

This module owns `message_fields(raw)`: subject, sender, recipients, date, the indexable body
text and whether the message has attachments, as the reference mailbox store puts them in its
full-text index; and `message_headers(raw)`, the part of it a database row needs (subject,
sender, recipients, attachment flag) without decoding any body text — the same values as
`message_fields` gives for them, at a fraction of the cost (a failover replay parses only these,
and the index catch-up the rest). It scans headers and MIME boundaries directly on bytes instead of using the
`email` package's parser (which is an order of magnitude slower); only small pieces lean on the
standard library (`email.utils` for dates, `binascii` for transfer encodings, `html`).

Rules, in the spirit of a mail server's indexer:
- the header block ends at the first empty line (CRLF or LF); folded headers are unfolded, names
  are case-insensitive, the first occurrence of a header wins;
- RFC 2047 encoded-words (B and Q, any charset Python knows) are decoded in Subject, From, To and
  Cc; whitespace between adjacent encoded-words is dropped, adjacent words in one charset are
  decoded together (so a character split across words survives); undecodable words stay raw;
- body text: text/plain, or text/html (tags stripped, entities unescaped) when a multipart level
  has no text/plain; multipart/alternative contributes one alternative; attachments
  (Content-Disposition: attachment, or any non-text leaf) are never decoded, only flagged;
- us-ascii bodies are decoded as UTF-8 (its superset) with errors="replace", so mislabelled
  8-bit text still indexes; unknown charsets fall back the same way.

`message_fields` never raises: malformed input degrades to whatever could be recovered.
"""

from __future__ import annotations

import binascii
import codecs
import contextlib
import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from email.utils import parsedate_to_datetime

__all__ = ["MessageFields", "MessageHeaders", "decode_rfc2047", "message_fields",
           "message_headers"]


class RowFields(Protocol):
    """What a database row takes from a message: either of the two results below."""

    @property
    def subject(self) -> str: ...
    @property
    def sender(self) -> str: ...
    @property
    def recipients(self) -> str: ...
    @property
    def has_attachment(self) -> bool: ...


@dataclass(frozen=True)
class MessageFields:
    """The indexed fields of one message."""

    subject: str
    sender: str
    recipients: str
    date_ms: int | None
    text: str
    has_attachment: bool


@dataclass(frozen=True)
class MessageHeaders:
    """The fields of one message a database row needs (`message_headers`)."""

    subject: str
    sender: str
    recipients: str
    has_attachment: bool


_EMPTY = MessageFields("", "", "", None, "", False)
_EMPTY_HEADERS = MessageHeaders("", "", "", False)
_MAX_DEPTH = 20  # nested multiparts deeper than this are ignored
_MAX_PARTS = 1000  # MIME parts examined per message, bounding work on hostile input

# Only the headers the indexer reads; `.` also matches the "\r" of a CRLF line end (stripped).
_HEADER = re.compile(r"^(subject|from|to|cc|date|content-type|content-transfer-encoding"
                     r"|content-disposition)[ \t]*:(.*(?:\r?\n[ \t].*)*)",
                     re.MULTILINE | re.IGNORECASE)
_UNFOLD = re.compile(r"\r?\n(?=[ \t])")
_PARAM = re.compile(r';\s*([!#-\'*+.0-9A-Z^-~-]+)\s*=\s*("[^"\\]*(?:\\.[^"\\]*)*"|[^;\s]*)',
                    re.IGNORECASE)
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_JUNK = bytes(sorted(set(range(256)) - set(_B64_ALPHABET)))  # for bytes.translate(None, ...)
# Pure-Python codecs with super-linear decoding: a hostile body must not be decoded with them.
_SLOW_CODECS = frozenset({"punycode", "idna"})
_FAST_CHARSETS = frozenset({"utf-8", "iso-8859-1", "windows-1252", "us-ascii"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATE = re.compile(r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2})"
                   r"(?::(\d{2}))?\s+(?:([+-])(\d{2})(\d{2})|GMT|UT|UTC|Z)\s*(?:\(.*\))?\s*$")
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}

# HTML to text, all linear-time: script/style/comments are cut out with str.find (or, when
# lower-casing moves offsets, a split-and-skip loop), and tags are only matched up to the next "<"
# so an unclosed "<" cannot make the scan quadratic.
_HIDDEN = (("<!--", "-->"), ("<script", "</script"), ("<style", "</style"))
_HTML_SKIP = re.compile(r"(<!--|-->|<(?:script|style)\b|</(?:script|style)\s*>)", re.IGNORECASE)
_HTML_BLOCK = re.compile(r"<(?:br|p|div|tr|td|th|li|h[1-6]|table|blockquote)\b[^<>]*>"
                         r"|</(?:p|div|tr|td|th|li|h[1-6]|table|blockquote)\s*>", re.IGNORECASE)
_HTML_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")
_BREAK_SPACE = re.compile(r"\n\s*")  # a line break and the blank lines / indentation after it


def message_fields(raw: bytes, *, max_text: int = 65536) -> MessageFields:
    """Subject, sender, recipients, date, indexable text and attachment flag of `raw`."""
    top = _top(raw)
    if top is None:
        return _EMPTY
    headers, body, subject, sender, recipients = top
    date_ms = _date_ms(headers.get("date"))
    walker = _Walker(max_text)
    with contextlib.suppress(Exception):  # keep whatever text was gathered before a failure
        walker.entity(headers, body, 0, True)
    text = "\n".join(walker.texts)
    if len(text) > max_text:
        text = text[:max_text]
    return MessageFields(subject, sender, recipients, date_ms, text, walker.has_attachment)


def message_headers(raw: bytes) -> MessageHeaders:
    """`message_fields(raw)`'s subject, sender, recipients and attachment flag, exactly, without
    decoding any text: the MIME tree is walked for part headers only, and only until the first
    attachment (which settles the flag)."""
    top = _top(raw)
    if top is None:
        return _EMPTY_HEADERS
    headers, body, subject, sender, recipients = top
    walker = _Walker(0, until_attachment=True)
    with contextlib.suppress(Exception):  # as message_fields: keep what was found
        walker.entity(headers, body, 0, False)
    return MessageHeaders(subject, sender, recipients, walker.has_attachment)


# -- headers ---------------------------------------------------------------------------------

def _top(raw: bytes) -> tuple[dict[str, str], bytes, str, str, str] | None:
    """(headers, body, subject, sender, recipients) of a message; None if it cannot be split."""
    try:
        head, body = _split(raw)
        headers = _headers(head)
    except Exception:  # noqa: BLE001 - the contract is "never raise"
        return None
    subject = _safe_decode(headers.get("subject", ""))
    sender = _safe_decode(headers.get("from", ""))
    recipients = ", ".join(_safe_decode(headers[h]) for h in ("to", "cc") if headers.get(h))
    return headers, body, subject, sender, recipients


def _split(raw: bytes) -> tuple[str, bytes]:
    """(header block as text, body bytes)."""
    if raw.startswith(b"\n"):
        return "", raw[1:]
    if raw.startswith(b"\r\n"):
        return "", raw[2:]
    a = raw.find(b"\n\r\n")
    b = raw.find(b"\n\n", 0, a if a >= 0 else len(raw))
    if a < 0 and b < 0:
        head, body = raw, b""
    elif b < 0 or 0 <= a < b:
        head, body = raw[:a + 1], raw[a + 3:]
    else:
        head, body = raw[:b + 1], raw[b + 2:]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    return text, body


def _headers(head: str) -> dict[str, str]:
    """Lower-cased name -> unfolded, stripped value; the first occurrence of a name wins."""
    out: dict[str, str] = {}
    for m in _HEADER.finditer(head):
        name = m.group(1).lower()
        if name not in out:
            value = m.group(2)
            if "\n" in value:
                value = _UNFOLD.sub("", value)
            out[name] = value.strip()
    return out


def _params(value: str) -> tuple[str, dict[str, str]]:
    """('type/subtype' lower-cased, {param: value}) of a Content-Type-like header."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    if rest:
        for m in _PARAM.finditer(";" + rest):
            name = m.group(1).lower()
            if name not in params:
                v = m.group(2)
                if v.startswith('"'):  # quoted-string (an unterminated one runs to the end)
                    v = v[1:-1] if len(v) > 1 and v.endswith('"') else v[1:]
                    v = v.replace('\\"', '"').replace("\\\\", "\\")
                params[name] = v
    return main.strip().lower(), params


def _content_type(headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Content-Type as (type, params); missing or syntactically invalid means text/plain."""
    ctype, params = _params(headers.get("content-type", ""))
    if "/" not in ctype:
        return "text/plain", params
    return ctype, params


def _date_ms(value: str | None) -> int | None:
    if not value:
        return None
    m = _DATE.match(value)
    if m:  # the common RFC 5322 shape; anything else goes to email.utils
        try:
            d, mon, y, hh, mm, ss, sign, oh, om = m.groups()
            offset = (int(oh) * 60 + int(om)) * (-1 if sign == "-" else 1) if sign else 0
            dt = datetime(int(y), _MONTHS[mon.lower()], int(d), int(hh), int(mm), int(ss or 0),
                          tzinfo=UTC)
            return (dt - _EPOCH) // _MS - offset * 60_000
        except (ValueError, KeyError, OverflowError):
            pass
    try:
        dt = parsedate_to_datetime(value)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return (dt - _EPOCH) // _MS
    except Exception:  # noqa: BLE001 - unparseable or out-of-range dates index as "no date"
        return None


_MS = datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC) - _EPOCH


# -- RFC 2047 --------------------------------------------------------------------------------

def _safe_decode(value: str) -> str:
    try:
        return decode_rfc2047(value)
    except Exception:  # noqa: BLE001
        return value


_Word = tuple[str, bytes | None, str, str]  # charset, decoded bytes, raw text, whitespace before


def decode_rfc2047(value: str) -> str:
    """Decode the RFC 2047 encoded-words in a header value; undecodable words are kept raw."""
    if "=?" not in value:
        return value
    out: list[str] = []
    pos = 0
    run: list[_Word] = []  # adjacent encoded-words, separated only by whitespace
    for m in _ENCODED_WORD.finditer(value):
        gap = value[pos:m.start()]
        if gap and (not run or gap.strip(" \t\r\n")):
            _flush(run, out)
            out.append(gap)
            gap = ""
        charset = m.group(1).partition("*")[0].lower()
        run.append((charset, _ew_bytes(m.group(2), m.group(3)), m.group(0), gap))
        pos = m.end()
    _flush(run, out)
    out.append(value[pos:])
    return "".join(out)


def _ew_bytes(kind: str, text: str) -> bytes | None:
    try:
        data = text.encode("ascii")
        if kind in "bB":
            data += b"=" * (-len(data) % 4)
            return binascii.a2b_base64(data, strict_mode=True)
        return binascii.a2b_qp(data, header=True)
    except Exception:  # noqa: BLE001
        return None


def _flush(run: list[_Word], out: list[str]) -> None:
    """Decode a run of adjacent encoded-words into `out`.

    Neighbours in one charset are decoded together, so a character split across words survives.
    The whitespace between adjacent words is dropped (RFC 2047 section 6.2), except next to a
    word that had to be kept raw.
    """
    segments: list[tuple[str, bool, str]] = []  # (text, kept raw, whitespace before)
    i = 0
    while i < len(run):
        charset, data, _, gap = run[i]
        j = i + 1
        while data is not None and j < len(run) and run[j][0] == charset and run[j][1] is not None:
            j += 1
        try:
            joined = b"".join(w[1] for w in run[i:j])  # type: ignore[misc]
            segments.append((_decode(joined, charset), False, gap))
        except Exception:  # noqa: BLE001 - fall back to word by word, raw when undecodable
            for cs, d, raw, g in run[i:j]:
                try:
                    segments.append((_decode(d, cs), False, g))  # type: ignore[arg-type]
                except Exception:  # noqa: BLE001
                    segments.append((raw, True, g))
        i = j
    prev_raw = False
    for text, is_raw, gap in segments:
        if is_raw or prev_raw:
            out.append(gap)
        out.append(text)
        prev_raw = is_raw
    run.clear()


def _decode(data: bytes, charset: str, errors: str = "strict") -> str:
    """`data` decoded; raises for unknown charsets and for codecs too slow for hostile input."""
    if charset not in _FAST_CHARSETS and codecs.lookup(charset).name in _SLOW_CODECS:
        raise LookupError(charset)
    return data.decode(charset, errors)


# -- body ------------------------------------------------------------------------------------

class _Walker:
    """Walks one message's MIME tree, gathering indexable text and the attachment flag."""

    def __init__(self, max_text: int, *, until_attachment: bool = False) -> None:
        self.max_text = max_text
        self.texts: list[str] = []
        self.size = 0
        self.parts = 0
        self.has_attachment = False
        # Headers only: stop at the first attachment (the walk gathers nothing else then).
        self.until_attachment = until_attachment

    def entity(self, headers: dict[str, str], body: bytes, depth: int, collect: bool) -> None:
        ctype, params = _content_type(headers)
        self.node(headers, ctype, params, body, depth, collect)

    def node(self, headers: dict[str, str], ctype: str, params: dict[str, str], body: bytes,
             depth: int, collect: bool) -> None:
        if self.until_attachment and self.has_attachment:
            return
        self.parts += 1
        if self.parts > _MAX_PARTS or depth > _MAX_DEPTH:
            return
        if ctype.startswith("multipart/"):
            self.multipart(ctype, params, body, depth, collect)
        elif _is_attachment(headers, ctype):
            self.has_attachment = True
        elif collect and self.size < self.max_text:
            self.add(_text_of(ctype, params, headers.get("content-transfer-encoding", ""), body))

    def add(self, text: str) -> None:
        text = text.strip()
        if text:
            self.texts.append(text)
            self.size += len(text) + 1

    def multipart(self, ctype: str, params: dict[str, str], body: bytes, depth: int,
                  collect: bool) -> None:
        declared = params.get("boundary", "")
        parts = _split_parts(body, declared.encode("utf-8", "replace")) if declared else []
        if not parts:  # no boundary parameter, or it does not match the body: guess one
            guessed = _guess_boundary(body)
            if guessed and guessed != declared:
                parts = _split_parts(body, guessed.encode("utf-8", "replace"))
        children: list[tuple[dict[str, str], str, dict[str, str], bytes, bool]] = []
        for part in parts:
            if len(children) + self.parts >= _MAX_PARTS:
                break
            head, pbody = _split(part)
            h = _headers(head)
            kind, kparams = _content_type(h)
            att = _is_attachment(h, kind)
            children.append((h, kind, kparams, pbody, att))
            if att and self.until_attachment and not kind.startswith("multipart/"):
                # The first child that is an attachment sets the flag when its turn comes,
                # unless an earlier sibling already did: nothing after it matters.
                break
        has_plain = any(k == "text/plain" and not att for _, k, _, _, att in children)
        has_html = any(k == "text/html" and not att for _, k, _, _, att in children)
        alternative = ctype == "multipart/alternative"
        for h, kind, kparams, pbody, att in children:
            take = collect
            if kind == "text/html" and has_plain:
                take = False  # text/html only counts when its level has no text/plain
            elif alternative and kind.startswith("multipart/") and (has_plain or has_html):
                take = False  # another alternative already supplies the text
            self.node(h, kind, kparams, pbody, depth + 1, take)


def _is_attachment(headers: dict[str, str], ctype: str) -> bool:
    if not ctype.startswith("text/"):
        return True
    return headers.get("content-disposition", "").lstrip().lower().startswith("attachment")


def _guess_boundary(body: bytes) -> str | None:
    """For a multipart without a usable boundary parameter: the first delimiter-looking line."""
    m = re.search(rb"^--([ -~]{1,70}?)[ \t]*\r?$", body[:8192], re.MULTILINE)
    return m.group(1).decode("ascii") if m else None


def _split_parts(body: bytes, boundary: bytes) -> list[bytes]:
    """The body parts between `--boundary` delimiter lines; a missing close is tolerated."""
    delim = b"--" + boundary
    parts: list[bytes] = []
    start = -1  # start of the current part's content, -1 while in the preamble
    pos = 0
    n = len(body)
    while True:
        i = body.find(delim, pos)
        if i < 0:
            break
        if i > 0 and body[i - 1] != 0x0A:  # not at the start of a line
            pos = i + 1
            continue
        after = i + len(delim)
        if body.startswith(b"--", after):
            if start >= 0:
                parts.append(_part(body, start, i))
            return parts
        eol = body.find(b"\n", after)
        if eol < 0:
            eol = n
        if body[after:eol].strip():  # "--boundaryX...": a longer boundary, not ours
            pos = i + 1
            continue
        if start >= 0:
            parts.append(_part(body, start, i))
            if len(parts) >= _MAX_PARTS:
                return parts
        start = pos = eol + 1
    if 0 <= start < n:
        parts.append(body[start:])
    return parts


def _part(body: bytes, start: int, delim_at: int) -> bytes:
    """Content from `start` up to the line break that belongs to the delimiter at `delim_at`."""
    end = delim_at - 1 if delim_at > 0 else 0
    if end > start and body[end - 1] == 0x0D:
        end -= 1
    return body[start:max(start, end)]


def _text_of(ctype: str, params: dict[str, str], cte: str, body: bytes) -> str:
    cte = cte.strip().lower()
    if cte == "base64":
        data = _b64decode(body)
    elif cte == "quoted-printable":
        data = binascii.a2b_qp(body)
    else:
        data = body
    charset = params.get("charset", "").strip().lower() or "utf-8"
    if charset in ("us-ascii", "ascii", "us_ascii"):
        charset = "utf-8"
    try:
        text = _decode(data, charset, "replace")
    except Exception:  # noqa: BLE001 - unknown, non-text or refused codec
        text = data.decode("utf-8", errors="replace")
    if ctype == "text/html":
        return html_to_text(text)
    if "\r" in text:  # CRLF to LF; the counting test is much cheaper than replacing "\r\n"
        if text.count("\r") == text.count("\n"):
            text = text.replace("\r", "")
        else:
            text = "\n".join(text.splitlines())
    return text


def _b64decode(body: bytes) -> bytes:
    try:
        return binascii.a2b_base64(body)
    except (binascii.Error, ValueError):  # bad padding: drop junk, re-pad, drop a lone 6 bits
        data = body.translate(None, _B64_JUNK)
        if len(data) % 4 == 1:
            data = data[:-1]
        data += b"=" * (-len(data) % 4)
        try:
            return binascii.a2b_base64(data)
        except (binascii.Error, ValueError):
            return b""


def html_to_text(markup: str) -> str:
    """Crude HTML to text: drop script/style/comments and tags, unescape entities, keep blocks."""
    # Source line breaks are spaces; block tags make lines. Whitespace is tidied only where it is
    # cheap (after line breaks): the text is for indexing, and every pass costs ~2 ns a character.
    text = _drop_hidden(markup).replace("\r", " ").replace("\n", " ")
    text = _HTML_TAG.sub("", _HTML_BLOCK.sub("\n", text))
    if "&" in text:
        text = html.unescape(text).replace("\xa0", " ")
    return _BREAK_SPACE.sub("\n", text).strip()


def _drop_hidden(markup: str) -> str:
    """`markup` without comments, scripts and styles (each replaced by a space), in linear time."""
    low = markup.lower()
    if len(low) != len(markup):  # lower() changed offsets (rare non-ASCII): the slower regex way
        return _drop_hidden_regex(markup)
    kept: list[str] = []
    pos = 0
    found = [low.find(opener) for opener, _ in _HIDDEN]
    while True:
        which, at = -1, -1
        for k, f in enumerate(found):
            if f >= 0 and (at < 0 or f < at):
                which, at = k, f
        if which < 0:
            break
        kept.append(markup[pos:at])
        kept.append(" ")
        opener, closer = _HIDDEN[which]
        end = low.find(closer, at + len(opener))
        if end < 0:
            return "".join(kept)
        pos = end + len(closer)
        if closer != "-->":
            gt = low.find(">", pos)
            pos = gt + 1 if gt >= 0 else len(markup)
        for k in range(len(found)):
            if 0 <= found[k] < pos:
                found[k] = low.find(_HIDDEN[k][0], pos)
    kept.append(markup[pos:])
    return "".join(kept)


def _drop_hidden_regex(markup: str) -> str:
    pieces = _HTML_SKIP.split(markup)
    kept: list[str] = []
    skip_until = ""
    for k, piece in enumerate(pieces):
        if k % 2 == 0:
            if not skip_until:
                kept.append(piece)
            continue
        low = piece.lower()
        if skip_until:
            if low.startswith(skip_until):
                skip_until = ""
        elif low == "<!--":
            skip_until = "-->"
        elif low.startswith("<script"):
            skip_until = "</script"
        elif low.startswith("<style"):
            skip_until = "</style"
        kept.append(" ")
    return "".join(kept)
