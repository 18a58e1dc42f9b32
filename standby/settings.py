"""Settings: resolved once, into one frozen object.

Order: the TOML file (`--config`, else `STANDBY_CONFIG`, else `./standby.toml`, else
`/etc/standby/standby.toml`), then environment overrides, then command-line overrides, then
validation. Unknown keys and wrong types are errors that name the key (exit 3). This is the only
module that reads `os.environ`; others receive what they need as arguments.

Relative paths in a config file are resolved against the file's directory, so a store folder
made by `standby store init DIR` can be moved as a whole.

Each section is a frozen dataclass; later features add a field (with a default) and the loader,
the validation and `standby config show` pick it up.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standby.errors import ConfigError, UsageError, VolumeError
from standby.transfer.throttle import parse_rate

VOLUME_NAMES = ("db", "blob", "index", "redolog")
BACKENDS = ("dir", "zfs", "btrfs", "lvm", "ebs")
DEFAULT_LOCATIONS = (Path("standby.toml"), Path("/etc/standby/standby.toml"))


def environ() -> Mapping[str, str]:
    """The process environment; the one place that reads it."""
    return os.environ


@dataclass(frozen=True)
class VolumeSettings:
    path: Path
    backend: str = "dir"
    # Backend-specific identity of the volume: ZFS dataset, btrfs subvolume path, LVM `vg/lv`,
    # EBS volume id. The `dir` backend needs none.
    dataset: str | None = None


@dataclass(frozen=True)
class Volumes:
    db: VolumeSettings
    blob: VolumeSettings
    index: VolumeSettings
    redolog: VolumeSettings

    def items(self) -> list[tuple[str, VolumeSettings]]:
        return [(n, getattr(self, n)) for n in VOLUME_NAMES]


@dataclass(frozen=True)
class MariaDBSettings:
    mariadbd: str = "mariadbd"
    install_db: str = "mariadb-install-db"
    socket: Path | None = None  # default: <state_dir>/mariadb.sock
    buffer_pool: str = "256M"
    log_file_size: str = "256M"
    # O_DIRECT is not available on every file system (zfs-fuse); fsync works everywhere.
    flush_method: str = "fsync"
    native_aio: bool = False
    # Zimbra runs InnoDB with 0: the redo log, not InnoDB, is the durability point.
    flush_log_at_trx_commit: int = 0
    start_timeout_s: float = 60.0
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class RedologSettings:
    fsync_interval_ms: int = 10
    rollover_size_kb: int = 102400
    rollover_min_age_s: int = 1800
    rollover_hard_max_kb: int = 1048576
    # Zimbra's default deletes rolled logs; a standby needs them archived for shipping.
    delete_on_rollover: bool = False
    crash_recovery_lookback_s: int = 10


@dataclass(frozen=True)
class StoreSettings:
    mailbox_groups: int = 100
    compress_blobs: bool = False
    compression_threshold: int = 4096
    socket: Path | None = None  # default: <state_dir>/store.sock
    directory: Path | None = None  # the LDAP stand-in; default: <state_dir>/directory.sqlite
    threads: int = 32


@dataclass(frozen=True)
class LogSettings:
    format: str = "auto"
    level: str = "info"


@dataclass(frozen=True)
class SnapshotSettings:
    """`[snapshot]`: how sets and redolog snapshots are taken (standby/snapshot/)."""

    # Seconds between the volumes of a staggered set (db, blob, index, redolog), as in the guide.
    stagger_s: float = 1.0
    # Take all volumes of one ZFS pool / one EC2 instance in one instant by default.
    atomic: bool = False
    # BACKUP STAGE START + BLOCK_COMMIT around the db volume's snapshot (always for `dir`).
    quiesce_db: bool = True
    # Hooks: argv lists run before and after every set / redolog snapshot (post always runs).
    pre_hook: tuple[str, ...] = ()
    post_hook: tuple[str, ...] = ()
    hook_timeout_s: float = 60.0
    # The HMAC-SHA256 key that signs manifests; a secret. Exactly one source: this key or the
    # environment variable STANDBY_MANIFEST_KEY.
    manifest_key: str | None = None
    # Snapshot names are `<prefix>-<set id>`.
    prefix: str = "standby"
    # How long the store may stay frozen while the `dir` backend copies one volume.
    freeze_timeout_s: float = 300.0
    # How long to wait for InnoDB to have no dirty pages before a `dir` copy of the db volume.
    db_clean_timeout_s: float = 60.0
    # Backend programs and places.
    zfs_program: str = "zfs"
    use_pyzfs: bool = True  # libzfs_core through pyzfs, when it is importable
    btrfs_program: str = "btrfs"
    btrfs_snapshot_dir: Path | None = None  # default: <volume's parent>/.standby-snapshots
    dir_snapshot_dir: Path | None = None  # default: <state_dir>/snapshots
    lvm_snapshot_size: str = "1G"
    ebs_region: str | None = None
    ebs_endpoint_url: str | None = None
    ebs_wait: bool = True  # wait until EBS snapshots are `completed`
    ebs_wait_timeout_s: float = 3600.0


@dataclass(frozen=True)
class RetentionSettings:
    """`[retention]`: tiered counts for sets, a count and/or an age for redolog snapshots."""

    hourly: int = 48
    daily: int = 14
    weekly: int = 8
    monthly: int = 6
    redolog_keep: int = 96
    redolog_max_age_s: int | None = None


@dataclass(frozen=True)
class TargetSettings:
    """`[target]`: where `standby ship` sends snapshots, and how (standby/transfer/)."""

    # s3://bucket/prefix, file:///path, zfs://[user@host/]pool/dataset, btrfs://[user@host]/path
    url: str | None = None
    # URLs (or URL prefixes) a --target may name; empty: any.
    allowed: tuple[str, ...] = ()
    # S3: any S3-compatible endpoint, the region, server-side encryption ("AES256", or "aws:kms"
    # which kms_key_id implies), the storage class of new objects, Object Lock (prune then
    # deletes nothing), multipart part size (the first part; later parts grow so that 10,000
    # hold 5 TiB), parts in flight at once, botocore's attempts per call.
    endpoint_url: str | None = None
    region: str | None = None
    sse: str | None = None
    kms_key_id: str | None = None
    storage_class: str | None = None
    object_lock: bool = False
    part_size_mb: int = 8
    concurrency: int = 4
    retries: int = 5
    # zstd level of every stored object (-7..22).
    compression_level: int = 3
    # AES-256-GCM client-side encryption of every object at the target (64 hex digits or base64
    # of 32 bytes); a secret. Exactly one source: this key or STANDBY_TARGET_KEY.
    encryption_key: str | None = None
    # ssh for zfs:// and btrfs:// targets on another host: a key file and `-o` options.
    ssh_identity: Path | None = None
    ssh_options: tuple[str, ...] = ("BatchMode=yes",)
    # Average rate limit of shipping, as rsync's --bwlimit (KiB/s, or with K, M, G).
    bwlimit: str | None = None


@dataclass(frozen=True)
class StreamSettings:
    """`[stream]`: `standby stream`, the redo log shipped as it grows (standby/transfer/stream*)."""

    # Ship what redo.log gained every interval_ms, or sooner once max_bytes have accumulated.
    interval_ms: int = 500
    max_bytes: int = 4 << 20
    # Segments the target could not take wait in the state dir, up to this many bytes; beyond
    # it the stream stops reading (the store's disk keeps the log) and status is CRITICAL.
    buffer_max_bytes: int = 1 << 30
    # Segments of an archived log are compacted into one object once it is complete.
    compact: bool = True
    # A target other than target.url (default: that one).
    target: str | None = None


@dataclass(frozen=True)
class MonitorSettings:
    """`[monitor]`: the WARNING / CRITICAL thresholds of `standby status --monitor` (seconds)."""

    set_warn_s: int = 5400  # newest complete set older than this
    set_crit_s: int = 10800
    redolog_warn_s: int = 1800  # newest redolog-volume snapshot (either kind) older than this
    redolog_crit_s: int = 3600
    ship_warn_s: int = 3600  # a complete snapshot still not at the target after this long
    ship_crit_s: int = 7200
    stream_warn_s: float = 5.0  # the stream this far behind redo.log, or silent this long
    stream_crit_s: float = 30.0


@dataclass(frozen=True)
class MetricsSettings:
    """`[metrics]`: the Prometheus textfile written after each action (node_exporter's
    textfile collector reads `*.prom` in its folder)."""

    textfile: Path | None = None


@dataclass(frozen=True)
class NotifySettings:
    """`[notify]`: mail about failed and overdue work and drill results, through SMTP."""

    smtp_host: str | None = None  # None: no mail
    smtp_port: int = 25
    starttls: bool = False
    username: str | None = None
    # A secret. Exactly one source: this key or STANDBY_SMTP_PASSWORD.
    password: str | None = None
    sender: str = "standby@localhost"
    to: tuple[str, ...] = ()
    subject_prefix: str = "[standby]"
    timeout_s: float = 10.0
    # What is mailed: failure (an action failed), overdue (status WARNING/CRITICAL, once per
    # change), drill (every drill's result).
    events: tuple[str, ...] = ("failure", "overdue", "drill")


@dataclass(frozen=True)
class Settings:
    server_id: str
    state_dir: Path
    volumes: Volumes
    mariadb: MariaDBSettings = field(default_factory=MariaDBSettings)
    redolog: RedologSettings = field(default_factory=RedologSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    log: LogSettings = field(default_factory=LogSettings)
    snapshot: SnapshotSettings = field(default_factory=SnapshotSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    target: TargetSettings = field(default_factory=TargetSettings)
    stream: StreamSettings = field(default_factory=StreamSettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    source: Path | None = None  # the file these settings came from (not a config key)

    # Derived locations -------------------------------------------------------------------
    @property
    def mariadb_socket(self) -> Path:
        return self.mariadb.socket or self.state_dir / "mariadb.sock"

    @property
    def store_socket(self) -> Path:
        return self.store.socket or self.state_dir / "store.sock"

    @property
    def directory_path(self) -> Path:
        return self.store.directory or self.state_dir / "directory.sqlite"


_NOT_KEYS = {"source"}


# --------------------------------------------------------------------------------------------
# Loading


def find_config(explicit: str | os.PathLike[str] | None) -> Path | None:
    """The config file to use, in the documented order; None if there is none at all."""
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist",
                              hint="create one with `standby store init DIR`")
        return p
    env = environ().get("STANDBY_CONFIG")
    if env:
        p = Path(env)
        if not p.is_file():
            raise ConfigError(f"STANDBY_CONFIG names {env!r}, which does not exist")
        return p
    for p in DEFAULT_LOCATIONS:
        if p.is_file():
            return p
    return None


def load(
    path: str | os.PathLike[str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve settings: file, then environment, then `overrides` (dotted keys such as
    `snapshot.stagger_s`, from command-line flags; None means "not given"), then validate
    the whole, so a flag is checked exactly as the same key in the file would be."""
    cfg = find_config(path)
    if cfg is None:
        raise ConfigError(
            "no configuration found",
            hint="pass --config FILE, set STANDBY_CONFIG, or run `standby store init DIR`",
        )
    try:
        raw = tomllib.loads(cfg.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{cfg}: not valid TOML: {e}") from e
    except OSError as e:
        raise ConfigError(f"{cfg}: cannot read: {e.strerror}") from e
    raw = _apply_env(raw, environ())
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, key, value)
    return from_mapping(raw, base_dir=cfg.parent.resolve(), source=cfg.resolve())


def with_overrides(s: Settings, overrides: Mapping[str, Any]) -> Settings:
    """`s` with dotted keys replaced (None values are left alone), validated again."""
    out = s
    for key, value in overrides.items():
        if value is None:
            continue
        *path, last = key.split(".")
        out = _replace_path(out, path, last, value, key)
    validate(out)
    return out


def _replace_path(obj: Any, path: list[str], last: str, value: Any, key: str) -> Any:
    if not path:
        if last in _NOT_KEYS or last not in {f.name for f in dataclasses.fields(obj)}:
            raise ConfigError(f"unknown configuration key {key}")
        tp = typing.get_type_hints(type(obj))[last]
        return dataclasses.replace(obj, **{last: _convert(tp, value, key, Path.cwd())})
    head, *rest = path
    return dataclasses.replace(obj, **{head: _replace_path(getattr(obj, head), rest, last,
                                                            value, key)})


def from_mapping(
    raw: Mapping[str, Any], *, base_dir: Path, source: Path | None = None
) -> Settings:
    settings = _build(Settings, dict(raw), "", base_dir)
    settings = dataclasses.replace(settings, source=source)
    validate(settings)
    return settings


def log_from_env(default_level: str = "info") -> LogSettings:
    """`[log]` for a command that reads no configuration file: the environment, else defaults."""
    env = environ()
    return LogSettings(format=env.get("STANDBY_LOG_FORMAT") or "auto",
                       level=env.get("STANDBY_LOG_LEVEL") or default_level)


_SECRET_ENV = (("STANDBY_MANIFEST_KEY", "snapshot", "manifest_key", "manifest key"),
               ("STANDBY_TARGET_KEY", "target", "encryption_key", "target encryption key"),
               ("STANDBY_SMTP_PASSWORD", "notify", "password", "SMTP password"))


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """STANDBY_LOG_FORMAT / STANDBY_LOG_LEVEL override the file; STANDBY_MANIFEST_KEY and
    STANDBY_TARGET_KEY are the other sources of the two secrets (a secret comes from exactly
    one place)."""
    for var, key in (("STANDBY_LOG_FORMAT", "log.format"), ("STANDBY_LOG_LEVEL", "log.level")):
        if env.get(var):
            _set_dotted(raw, key, env[var])
    for var, section, key, what in _SECRET_ENV:
        secret = env.get(var)
        if not secret:
            continue
        sec = raw.get(section)
        if isinstance(sec, dict) and sec.get(key):
            raise ConfigError(
                f"the {what} is set twice: {section}.{key} in the config file and {var} in "
                "the environment",
                hint="a secret comes from exactly one source; remove one of them")
        _set_dotted(raw, f"{section}.{key}", secret)
    return raw


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def _build(cls: type, raw: dict[str, Any], where: str, base_dir: Path) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in _NOT_KEYS}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        loc = f"[{where}]" if where else "the top level"
        raise ConfigError(
            f"unknown configuration key {where + '.' if where else ''}{unknown[0]} in {loc}",
            hint="valid keys here: " + ", ".join(sorted(fields)),
        )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name in raw:
            kwargs[name] = _convert(hints[name], raw[name], key, base_dir)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing configuration key {key}")
    return cls(**kwargs)


def _convert(tp: Any, value: Any, key: str, base_dir: Path) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, key, base_dir)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"configuration key {key} must be a table")
        return _build(tp, value, key, base_dir)  # type: ignore[arg-type]
    if tp is Path:
        if not isinstance(value, str | os.PathLike):
            raise ConfigError(f"configuration key {key} must be a path string")
        p = Path(value).expanduser()
        return p if p.is_absolute() else (base_dir / p)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"configuration key {key} must be a list")
        (item_tp, *_rest) = typing.get_args(tp)
        return tuple(_convert(item_tp, v, key, base_dir) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"configuration key {key} must be a table")
        _k, v_tp = typing.get_args(tp)
        return {k: _convert(v_tp, v, f"{key}.{k}", base_dir) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"configuration key {key} must be true or false, not {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value)
            raise ConfigError(f"configuration key {key} must be an integer, not {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"configuration key {key} must be a number, not {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"configuration key {key} must be a string, not {value!r}")
        return value
    return value


def validate(s: Settings) -> None:
    """Checks that need no disk access: ranges, choices, cross-field rules."""
    if not s.server_id or len(s.server_id.encode()) > 127:
        raise ConfigError("server_id must be 1 to 127 bytes (it is written into redo headers)")
    for name, vol in s.volumes.items():
        if vol.backend not in BACKENDS:
            raise ConfigError(
                f"volumes.{name}.backend: {vol.backend!r} is not a backend",
                hint="choose one of " + ", ".join(BACKENDS),
            )
        if vol.backend in ("zfs", "lvm", "ebs") and not vol.dataset:
            raise ConfigError(f"volumes.{name}: the {vol.backend} backend needs `dataset`")
    paths = [vol.path.resolve() for _, vol in s.volumes.items()]
    if len(set(paths)) != len(paths):
        raise ConfigError("the four volumes must be four different paths")
    if s.store.mailbox_groups < 1:
        raise ConfigError("store.mailbox_groups must be at least 1")
    r = s.redolog
    if r.rollover_size_kb <= 0 or r.rollover_hard_max_kb < r.rollover_size_kb:
        raise ConfigError("redolog: need 0 < rollover_size_kb <= rollover_hard_max_kb")
    if r.fsync_interval_ms < 0 or r.fsync_interval_ms > 1000:
        raise ConfigError("redolog.fsync_interval_ms must be within 0..1000")
    if s.mariadb.flush_log_at_trx_commit not in (0, 1, 2):
        raise ConfigError("mariadb.flush_log_at_trx_commit must be 0, 1 or 2")
    _validate_snapshot(s.snapshot, s.retention)
    _validate_target(s.target)
    _validate_observing(s)


def _validate_snapshot(sn: SnapshotSettings, rt: RetentionSettings) -> None:
    if not 0 <= sn.stagger_s <= 3600:
        raise ConfigError("snapshot.stagger_s must be within 0..3600 seconds")
    for key in ("hook_timeout_s", "freeze_timeout_s", "db_clean_timeout_s",
                "ebs_wait_timeout_s"):
        if getattr(sn, key) <= 0:
            raise ConfigError(f"snapshot.{key} must be more than 0 seconds")
    if not sn.prefix or not all(c.isalnum() or c in "-_." for c in sn.prefix):
        raise ConfigError("snapshot.prefix must be letters, digits, '-', '_' or '.'")
    if sn.manifest_key is not None and len(sn.manifest_key.encode()) < 16:
        raise ConfigError("the manifest key must be at least 16 bytes",
                          hint="generate one with `openssl rand -hex 32`")
    for key in ("hourly", "daily", "weekly", "monthly", "redolog_keep"):
        if getattr(rt, key) < 0:
            raise ConfigError(f"retention.{key} must be 0 or more")
    if rt.redolog_max_age_s is not None and rt.redolog_max_age_s <= 0:
        raise ConfigError("retention.redolog_max_age_s must be more than 0 seconds")


def _validate_target(t: TargetSettings) -> None:
    if t.sse not in (None, "AES256", "aws:kms"):
        raise ConfigError(f"target.sse: {t.sse!r} is not AES256 or aws:kms")
    if t.kms_key_id and t.sse == "AES256":
        raise ConfigError("target.kms_key_id goes with SSE-KMS, and target.sse says AES256",
                          hint='drop target.sse (kms_key_id implies "aws:kms")')
    for key, lo, hi in (("part_size_mb", 5, 5120), ("concurrency", 1, 64), ("retries", 1, 20),
                        ("compression_level", -7, 22)):
        v = getattr(t, key)
        if not lo <= v <= hi:
            raise ConfigError(f"target.{key} must be within {lo}..{hi}, not {v}")
    if t.bwlimit is not None:
        try:
            parse_rate(t.bwlimit, option="target.bwlimit")
        except UsageError as e:
            raise ConfigError(e.message, hint=e.hint) from e
    for opt in t.ssh_options:
        if not opt or opt.startswith("-") or "=" not in opt:
            raise ConfigError(f"target.ssh_options: {opt!r} is not an ssh option",
                              hint='write them as for `ssh -o`, e.g. "StrictHostKeyChecking=yes"')


NOTIFY_EVENTS = ("failure", "overdue", "drill")


def _validate_observing(s: Settings) -> None:
    st, mo, no = s.stream, s.monitor, s.notify
    if not 50 <= st.interval_ms <= 60000:
        raise ConfigError("stream.interval_ms must be within 50..60000")
    if st.max_bytes < 4096 or st.buffer_max_bytes < st.max_bytes:
        raise ConfigError("stream: need 4096 <= max_bytes <= buffer_max_bytes")
    for what in ("set", "redolog", "ship", "stream"):
        warn, crit = getattr(mo, f"{what}_warn_s"), getattr(mo, f"{what}_crit_s")
        if not 0 < warn <= crit:
            raise ConfigError(f"monitor: need 0 < {what}_warn_s <= {what}_crit_s")
    bad = [e for e in no.events if e not in NOTIFY_EVENTS]
    if bad:
        raise ConfigError(f"notify.events: {bad[0]!r} is not an event",
                          hint="choose from " + ", ".join(NOTIFY_EVENTS))
    if no.smtp_host is not None and not no.to:
        raise ConfigError("notify.smtp_host is set and notify.to names nobody",
                          hint='e.g. to = ["oncall@example.org"]')
    if not 0 < no.smtp_port < 65536 or no.timeout_s <= 0:
        raise ConfigError("notify: smtp_port must be 1-65535 and timeout_s more than 0")


def check_volumes(s: Settings, *, writable: bool = True) -> None:
    """Each volume path must exist, be a directory, and (if `writable`) be writable."""
    for name, vol in s.volumes.items():
        p = vol.path
        if not p.exists():
            raise VolumeError(f"volume {name}: {p} does not exist",
                              hint="create it, or fix volumes.%s.path in %s" % (name, s.source))
        if not p.is_dir():
            raise VolumeError(f"volume {name}: {p} is not a directory")
        if writable and not os.access(p, os.W_OK | os.X_OK):
            raise VolumeError(f"volume {name}: {p} is not writable by this user")


SECRET_KEYS = frozenset({"manifest_key", "encryption_key", "password"})


def to_toml(s: Settings, *, include_secrets: bool = False) -> str:
    """Render settings as TOML (for `store init` and `config show`); secrets are left out
    unless asked for."""
    lines: list[str] = []

    def emit_table(prefix: str, obj: Any) -> None:
        scalars: list[tuple[str, Any]] = []
        tables: list[tuple[str, Any]] = []
        for f in dataclasses.fields(obj):
            if f.name in _NOT_KEYS:
                continue
            v = getattr(obj, f.name)
            (tables if dataclasses.is_dataclass(v) else scalars).append((f.name, v))
        if prefix and scalars:
            lines.append(f"\n[{prefix}]")
        for k, v in scalars:
            if v is None or (k in SECRET_KEYS and not include_secrets):
                continue
            lines.append(f"{k} = {_toml_value(v)}")
        for k, v in tables:
            emit_table(f"{prefix}.{k}" if prefix else k, v)

    emit_table("", s)
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, Path):
        v = str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot render {v!r} as TOML")
