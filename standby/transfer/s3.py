"""`s3://bucket/prefix`: an `ObjectStore` in an S3 bucket (AWS, or any S3-compatible endpoint).

A server's objects live under `<prefix>/<server id>/` (the prefix a role can be held to). The
boto3 client comes in as an argument (made in the composition root, `factory.py`, with
botocore's retry configuration: retries are botocore's, not a loop here). Every call goes
through `_call`, which refuses any method not in `s3_calls.CALLS`, the one table of what this
target calls and why, from which the IAM policy of each role is generated; keys are under
`s3_calls.server_prefix`, as that policy requires.

Writing an object:

- an object smaller than its first part goes up in one `put_object` (a small redolog increment
  costs one request);
- a larger one (a snapshot stream of unknown length) becomes a multipart upload, created when
  the first part is full; parts are cut by `parts.schedule` (starting at `part_size`, growing
  so that 10,000 parts hold 5 TiB) and sent `concurrency` at a time, so at most
  `concurrency + 1` parts are in memory (parts above `SPOOL` bytes wait in a temporary file);
- server-side encryption (SSE-S3, or SSE-KMS with a key id) and the storage class are asked for
  on every `put_object` and `create_multipart_upload`.

Resume: the upload id, the part size schedule's base and each finished part's number, ETag,
size and sha256 go to `save` as they happen (the caller keeps them in local state). The next
attempt re-reads its source from the start and cuts it the same way; each part the server holds
with the recorded ETag is skipped when its bytes hash the same, and is not sent again. If the
upload is gone at the server (`NoSuchUpload`: aborted, or a lifecycle rule removed it) the
object starts again cleanly; if a regenerated part differs (the source is not byte-for-byte
reproducible), the old upload is aborted and `ResumeImpossible` makes the caller start over.
An upload that fails (network, server) is left in place for that resume; only `abort` — an
error of the source, or a restart — gives it up.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from functools import partial
from typing import IO, Any

from standby import log as slog
from standby.errors import ConfigError, NotFound, ServiceError, StandbyError
from standby.transfer import s3_calls
from standby.transfer._base import ResumeImpossible, WriteStats
from standby.transfer.parts import schedule
from standby.transfer.s3_calls import server_prefix

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

# The methods of the one table of S3 calls (s3_calls.CALLS): what this target may call.
CALLED = frozenset(c.method for c in s3_calls.CALLS)

SPOOL = 64 << 20  # parts up to this size wait in memory, larger ones in a temporary file
READ_CHUNK = 1 << 20

_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                "InvalidToken", "AuthorizationHeaderMalformed", "InvalidClientTokenId"}


class UploadInterrupted(ServiceError):
    """A part could not be sent; the upload stays at the server for the next attempt."""


class S3Store:
    """An `ObjectStore` under `s3://bucket/<prefix>/<server id>/`."""

    def __init__(self, client: Any, *, bucket: str, prefix: str, server_id: str,
                 sse: str | None = None, kms_key_id: str | None = None,
                 storage_class: str | None = None, part_size: int = 8 << 20,
                 concurrency: int = 4) -> None:
        self.client = client
        self.bucket = bucket
        self.root = server_prefix(prefix, server_id)
        self.schedule = schedule(part_size)
        self.concurrency = concurrency
        self.extra: dict[str, str] = {}
        if sse:
            self.extra["ServerSideEncryption"] = sse
        if kms_key_id:
            self.extra["ServerSideEncryption"] = "aws:kms"
            self.extra["SSEKMSKeyId"] = kms_key_id
        if storage_class:
            self.extra["StorageClass"] = storage_class
        self.log = slog.get("standby.transfer.s3", bucket=bucket)

    def where(self) -> str:
        return f"s3://{self.bucket}/{self.root}"

    def _call(self, method: str, **kw: Any) -> Any:
        if method not in CALLED:
            raise AssertionError(f"S3 call {method} is not in s3_calls.CALLS")
        with translated(f"{method} {kw.get('Key', self.root)}", self.bucket):
            return getattr(self.client, method)(Bucket=self.bucket, **kw)

    def check(self, *, write: bool) -> None:
        self._call("list_objects_v2", Prefix=self.root, MaxKeys=1)

    # -- KeyStore ---------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        self._call("put_object", Key=self.root + key, Body=data, **self.extra)

    def get(self, key: str) -> bytes:
        body = self._call("get_object", Key=self.root + key)["Body"]
        with translated(f"reading {key}", self.bucket):
            return bytes(body.read())

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", Key=self.root + key)
        except NotFound:
            return False
        return True

    def list(self, prefix: str = "") -> dict[str, int]:
        out: dict[str, int] = {}
        kw: dict[str, Any] = {"Prefix": self.root + prefix}
        while True:
            page = self._call("list_objects_v2", **kw)
            for o in page.get("Contents", []):
                out[o["Key"][len(self.root):]] = int(o["Size"])
            if not page.get("IsTruncated"):
                return out
            kw["ContinuationToken"] = page["NextContinuationToken"]

    def delete(self, key: str) -> None:
        self._call("delete_object", Key=self.root + key)

    # -- ObjectStore ------------------------------------------------------------------------
    def read(self, key: str) -> Iterator[bytes]:
        body = self._call("get_object", Key=self.root + key)["Body"]
        with translated(f"reading {key}", self.bucket):
            yield from body.iter_chunks(READ_CHUNK)

    def open_write(self, key: str, *, resume: Mapping[str, Any] | None = None,
                   save: Callable[[dict[str, Any]], None] = lambda st: None) -> S3Sink:
        return S3Sink(self, self.root + key, resume=resume, save=save)


class _Part:
    """One part's bytes as they arrive: in memory, or in a temporary file above `SPOOL`."""

    def __init__(self, number: int, size: int) -> None:
        self.number = number
        self.size = size
        self.length = 0
        self._mem = bytearray()
        self._file: IO[bytes] | None = tempfile.TemporaryFile() if size > SPOOL else None

    def add(self, data: bytes) -> None:
        self.length += len(data)
        if self._file is not None:
            self._file.write(data)
        else:
            self._mem += data

    def sha256(self) -> str:
        """The part's sha256, taken once it is whole: by the worker thread that sends it (off
        the thread that compresses; hashlib lets go of the GIL), or to compare with a part of
        an interrupted upload."""
        h = hashlib.sha256()
        f = self._file
        if f is None:
            h.update(self._mem)
        else:
            f.seek(0)
            for chunk in iter(partial(f.read, 8 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    def body(self) -> bytes | IO[bytes]:
        if self._file is None:
            return bytes(self._mem)
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._mem = bytearray()


class S3Sink:
    """A stream going up as one object (see the module docstring)."""

    def __init__(self, store: S3Store, key: str, *, resume: Mapping[str, Any] | None,
                 save: Callable[[dict[str, Any]], None]) -> None:
        self.store = store
        self.key = key
        self.stats = WriteStats()
        self._save = save
        self._upload_id: str | None = None
        self._done: dict[int, dict[str, Any]] = {}  # part number -> etag, size, sha256
        self._inflight: dict[Future[dict[str, Any]], _Part] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._part = _Part(1, store.schedule.size(1))
        self._closed = False
        self._lock = threading.Lock()  # the recorded parts, from the worker threads
        if resume:
            self._resume(resume)

    # -- resume -----------------------------------------------------------------------------
    def _resume(self, st: Mapping[str, Any]) -> None:
        uid = st.get("upload_id")
        if not uid or st.get("key") != self.key or st.get("part_base") != \
                self.store.schedule.base:
            self.stats.restarted = "the recorded upload was for another key or part size"
            return
        try:
            there = self._server_parts(str(uid))
        except ResumeImpossible as e:
            self.stats.restarted = e.message
            self._save({})
            return
        for n_text, p in dict(st.get("parts") or {}).items():
            n = int(n_text)
            if there.get(n) == (p.get("etag"), p.get("size")):
                self._done[n] = dict(p)
        self._upload_id = str(uid)
        self.stats.resumed = True
        self.store.log.info("s3_upload_resumed", key=self.key, upload_id=uid,
                            parts_done=len(self._done))

    def _server_parts(self, upload_id: str) -> dict[int, tuple[str, int]]:
        out: dict[int, tuple[str, int]] = {}
        kw: dict[str, Any] = {"Key": self.key, "UploadId": upload_id}
        while True:
            try:
                page = self.store._call("list_parts", **kw)
            except NotFound as e:
                raise ResumeImpossible(f"the interrupted upload of {self.key} is gone at the "
                                       "server (aborted, or removed by a lifecycle rule)") from e
            for p in page.get("Parts", []):
                out[int(p["PartNumber"])] = (str(p["ETag"]), int(p["Size"]))
            if not page.get("IsTruncated"):
                return out
            kw["PartNumberMarker"] = page["NextPartNumberMarker"]

    def _state(self) -> dict[str, Any]:
        return {"key": self.key, "upload_id": self._upload_id,
                "part_base": self.store.schedule.base,
                "parts": {str(n): p for n, p in sorted(self._done.items())}}

    # -- writing ----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            room = self._part.size - self._part.length
            self._part.add(bytes(view[:room]))
            view = view[room:]
            if self._part.length == self._part.size:
                self._flush_part()

    def _flush_part(self) -> None:
        part = self._part
        self._part = _Part(part.number + 1, self.store.schedule.size(part.number + 1))
        if self._upload_id is None:
            self._create()
        done = self._done.get(part.number)
        if done is not None:
            if done.get("sha256") == part.sha256():
                self.stats.parts_skipped += 1
                part.close()
                return
            n = part.number
            part.close()
            self.abort()
            raise ResumeImpossible(f"part {n} of {self.key} differs from the interrupted "
                                   "upload's (the stream is not reproducible)")
        self._submit(part)

    def _create(self) -> None:
        res = self.store._call("create_multipart_upload", Key=self.key, **self.store.extra)
        self._upload_id = str(res["UploadId"])
        self._persist()
        self.store.log.info("s3_upload_created", key=self.key, upload_id=self._upload_id)

    def _submit(self, part: _Part) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.store.concurrency,
                                            thread_name_prefix="s3-part")
        while len(self._inflight) >= self.store.concurrency:
            self._reap(FIRST_COMPLETED)
        self._inflight[self._pool.submit(self._send, part)] = part

    def _send(self, part: _Part) -> dict[str, Any]:
        """Send one part (in a worker thread) and record it at once: a part the server has
        acknowledged is never sent again, whenever the upload stops."""
        assert self._upload_id is not None
        digest = part.sha256()
        res = self.store._call("upload_part", Key=self.key, UploadId=self._upload_id,
                               PartNumber=part.number, Body=part.body())
        done = {"etag": str(res["ETag"]), "size": part.length, "sha256": digest}
        with self._lock:
            self._done[part.number] = done
            self._save(self._state())
        return done

    def _persist(self) -> None:
        with self._lock:
            self._save(self._state())

    def _reap(self, how: str) -> None:
        finished, _ = wait(list(self._inflight), return_when=how)
        error: BaseException | None = None
        for f in finished:
            part = self._inflight.pop(f)
            try:
                f.result()
                self.stats.parts_sent += 1
                self.stats.bytes_sent += part.length
            except BaseException as e:  # re-raised below, after every finished part is kept
                error = error or e
            finally:
                part.close()
        if error is not None:
            self._drain()
            if isinstance(error, StandbyError):
                raise UploadInterrupted(
                    f"upload of {self.key} stopped after {len(self._done)} part(s): "
                    f"{error.message}",
                    hint="run `standby ship` again: it continues this upload") from error
            raise error

    def _drain(self) -> None:
        """Wait for the parts still in flight (those that make it record themselves)."""
        if not self._inflight:
            return
        finished, _ = wait(list(self._inflight))
        for f in finished:
            self._inflight.pop(f).close()

    def commit(self) -> None:
        if self._upload_id is None:
            # Smaller than its first part: one request.
            body = self._part.body()
            self.store._call("put_object", Key=self.key, Body=body, **self.store.extra)
            self.stats.parts_sent = 1
            self.stats.bytes_sent = self._part.length
            self._part.close()
            self._finish()
            return
        if self._part.length:
            self._flush_part()
        else:
            self._part.close()
        while self._inflight:
            self._reap(FIRST_COMPLETED)
        parts = [{"PartNumber": n, "ETag": p["etag"]} for n, p in sorted(self._done.items())]
        self.store._call("complete_multipart_upload", Key=self.key, UploadId=self._upload_id,
                         MultipartUpload={"Parts": parts})
        self._finish()

    def _finish(self) -> None:
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._save({})

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        for f in list(self._inflight):
            f.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for part in self._inflight.values():
            part.close()
        self._inflight.clear()
        self._part.close()
        if self._upload_id is not None:
            try:
                self.store._call("abort_multipart_upload", Key=self.key,
                                 UploadId=self._upload_id)
            except StandbyError as e:  # a stale upload is what the lifecycle rule is for
                self.store.log.warning("s3_abort_failed", key=self.key, error=str(e))
        self._save({})


@contextmanager
def translated(what: str, bucket: str) -> Iterator[None]:
    """botocore's exceptions -> standby's, with a message naming the bucket and what to do."""
    try:
        yield
    except NoCredentialsError as e:
        raise ConfigError(f"no AWS credentials for the S3 target ({what})",
                          hint="give them as for the AWS CLI: AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, or an instance "
                               "role") from e
    except EndpointConnectionError as e:
        raise ServiceError(f"cannot reach the S3 endpoint for bucket {bucket}: {e}",
                           hint="check target.endpoint_url and the network") from e
    except ClientError as e:
        raise _client_error(e, what, bucket) from e
    except BotoCoreError as e:
        raise ServiceError(f"S3 {what} in bucket {bucket} failed: {e}",
                           hint="check the network and the endpoint, then run it again") from e


def _client_error(e: ClientError, what: str, bucket: str) -> StandbyError:
    err = e.response.get("Error", {})
    code = str(err.get("Code", ""))
    msg = str(err.get("Message", "")) or code
    status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code == "NoSuchBucket":
        return NotFound(f"the S3 bucket {bucket!r} does not exist",
                        hint="create it (terraform/modules/standby-bucket), or fix target.url")
    if code in _CREDENTIALS:
        return ConfigError(f"S3 refused the credentials for bucket {bucket} ({code}: {msg})",
                           hint="check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the "
                                "profile, and target.region")
    if code in ("AccessDenied", "AllAccessDisabled") or status == 403:
        return ConfigError(f"S3 denied {what} in bucket {bucket} ({code or status}: {msg})",
                           hint="the role needs the calls `standby target iam-policy` lists, "
                                "on this server's prefix")
    if code in ("NoSuchKey", "NoSuchUpload", "404", "NotFound") or status == 404:
        return NotFound(f"S3 {what} in bucket {bucket}: not found ({code or status})")
    if code in ("KMS.NotFoundException", "KMS.DisabledException", "InvalidArgument"):
        return ConfigError(f"S3 refused {what} in bucket {bucket} ({code}: {msg})",
                           hint="check target.sse, target.kms_key_id and target.storage_class")
    return ServiceError(f"S3 {what} in bucket {bucket} failed ({code or status}: {msg})",
                        hint="run it again; botocore has already retried")
