"""Targets from settings and URLs: the composition root of shipping.

Only here is an S3 client made (boto3, with botocore's standard retry mode and the configured
number of attempts: retries are botocore's), and only here are stores, codecs and catalogs put
together into a `Target`. Callers (the CLI, the drill, the benchmark) may pass a client factory
instead (tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from standby import _process
from standby.catalog.manifest import require_key
from standby.catalog.target import TargetCatalog
from standby.errors import ConfigError, StateConflict, UsageError
from standby.settings import Settings
from standby.snapshot import factory as backends_factory
from standby.snapshot._base import StreamingBackend
from standby.transfer import codec, hostdir
from standby.transfer._base import ObjectStore, Target, TargetUrl, parse_url, within
from standby.transfer.file import DirStore
from standby.transfer.objects import ObjectTarget
from standby.transfer.receive import ReceiveTarget
from standby.transfer.s3 import S3Store, translated


def s3_client(s: Settings, *, credentials: tuple[str, str] | None = None) -> Any:
    """The S3 client of the `[target]` settings; `credentials` (access key, secret) for a
    benchmark's own server, else botocore finds them as the AWS CLI does."""
    import boto3
    from botocore.config import Config

    t = s.target
    opts: dict[str, Any] = {
        "retries": {"mode": "standard", "max_attempts": t.retries},
        "max_pool_connections": t.concurrency + 4, "connect_timeout": 10, "read_timeout": 120}
    if "request_checksum_calculation" in Config.OPTION_DEFAULTS:
        # botocore 1.36 on adds a CRC32 to every upload by default: only where S3 requires one
        # (the sha256 of every object is ours, in its record).
        opts.update(request_checksum_calculation="when_required",
                    response_checksum_validation="when_required")
    keys = {} if credentials is None else {"aws_access_key_id": credentials[0],
                                           "aws_secret_access_key": credentials[1]}
    with translated("creating the S3 client", "-"):
        # A session of its own: boto3's default one would keep the first credentials it found.
        return boto3.session.Session().client("s3", region_name=t.region,
                                              endpoint_url=t.endpoint_url,
                                              config=Config(**opts), **keys)


def encryption_key(s: Settings) -> bytes | None:
    text = s.target.encryption_key
    if text is None:
        return None
    return codec.parse_key(text, source="target.encryption_key (or STANDBY_TARGET_KEY)")


def target_url(url: str | None, s: Settings) -> TargetUrl:
    """The URL to use (`url`, else `target.url`), parsed and inside `target.allowed`."""
    text = url or s.target.url
    if not text:
        raise ConfigError("no target to ship to or pull from",
                          hint="pass --target URL, or set target.url in the config file")
    u = parse_url(text)
    if not within(u, s.target.allowed):
        raise ConfigError(f"the target {u} is outside the allowed targets "
                          f"({', '.join(s.target.allowed)})",
                          hint="name a target under target.allowed, or extend that list")
    return u


def open_target(url: str | None, s: Settings, *,
                s3: Callable[[], Any] | None = None) -> Target:
    """The target `url` names (default `target.url`), put together from the settings."""
    u = target_url(url, s)
    key = require_key(s.snapshot.manifest_key)
    enc = encryption_key(s)
    level = s.target.compression_level

    def seal(doc: bytes) -> bytes:
        return codec.encode(doc, level=level, key=enc)[0] if enc is not None else doc

    def unseal(raw: bytes, what: str) -> bytes:
        if raw[:len(codec.MAGIC)] != codec.MAGIC:
            return raw  # plain signed JSON: the signature guards it
        return codec.decode(raw, key=enc, encrypted=True, what=what)

    if u.scheme in OBJECT_SCHEMES:
        store = object_store(u, s, s3=s3)
    else:
        remote = remote_of(u, s)
        be = backends_factory.backend(u.scheme, s)
        assert isinstance(be, StreamingBackend)

        def make_catalog() -> TargetCatalog:
            folder = hostdir.catalog_folder(u.scheme, u.path, remote)
            where = f"{u}/{hostdir.CATALOG}/{s.server_id}"
            kv: Any
            if folder is None:
                kv = hostdir.Unmounted(u.path, where)
            elif remote is None:
                kv = DirStore(Path(folder), s.server_id, url=f"{u}/{hostdir.CATALOG}")
            else:
                kv = hostdir.SshDirStore(remote, f"{folder}/{s.server_id}", where=where)
            return TargetCatalog(kv, s.server_id, key, seal=seal, unseal=unseal)

        return ReceiveTarget(u, be, make_catalog, remote=remote, server_id=s.server_id)
    catalog = TargetCatalog(store, s.server_id, key, seal=seal, unseal=unseal)
    return ObjectTarget(u, store, catalog, level=level, enc_key=enc)


OBJECT_SCHEMES = ("s3", "file")


def object_store(u: TargetUrl, s: Settings, *,
                 s3: Callable[[], Any] | None = None) -> ObjectStore:
    """The `ObjectStore` of an s3 or file URL, from the `[target]` settings (also what the
    classic backups keep their sessions in when `-t` is such a URL)."""
    if u.scheme == "s3":
        t = s.target
        return S3Store((s3 or (lambda: s3_client(s)))(), bucket=u.bucket, prefix=u.path,
                       server_id=s.server_id, sse=t.sse, kms_key_id=t.kms_key_id,
                       storage_class=t.storage_class, part_size=t.part_size_mb << 20,
                       concurrency=t.concurrency)
    if u.scheme == "file":
        return DirStore(Path(u.path), s.server_id, url=str(u))
    raise UsageError(f"{u} is not an object target (s3:// or file://)")


def remote_of(u: TargetUrl, s: Settings) -> _process.Remote | None:
    """The ssh end of a zfs/btrfs target on another host, with `[target]`'s ssh settings.

    Unless those say otherwise, one ssh connection is shared by every command of a run (and
    kept for a minute): a ship or pull runs a few commands per snapshot there, and each new
    connection costs a key exchange."""
    if u.host is None:
        return None
    opts = tuple(s.target.ssh_options)
    if not any(o.split("=", 1)[0].lower() in ("controlmaster", "controlpath") for o in opts):
        opts += ("ControlMaster=auto", f"ControlPath={control_dir(s) / '%C'}",
                 "ControlPersist=60")
    return _process.Remote(host=u.host, user=u.user, port=u.port,
                           identity=s.target.ssh_identity, options=opts)


def control_dir(s: Settings) -> Path:
    """Where shared ssh connections' sockets go: the state folder, or, when its path is too
    long for a socket (108 bytes, with a 40-character name), a private folder in /tmp."""
    d = s.state_dir / "ssh"
    if len(os.fsencode(d)) > 60:
        d = Path("/tmp") / f"standby-ssh-{os.getuid()}"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = d.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise StateConflict(f"{d} is not a private folder of this user",
                            hint="remove it, or set ControlPath in target.ssh_options")
    return d
