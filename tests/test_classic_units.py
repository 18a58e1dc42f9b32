"""The classic module's pure parts: labels and values, XML files, zmprov attributes,
localconfig, deletion planning, the query's output, the free-space check."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standby.classic import attrs, deletion, labels, localconfig, query, xmlfiles
from standby.classic.labels import Label
from standby.classic.target import SessionInfo, Target
from standby.classic.xmlfiles import AccountMeta, Session, SessionAccount
from standby.errors import FormatError, NotFound, UsageError, VolumeError

MS_2100 = 4_102_444_800_000
ms_times = st.integers(0, MS_2100)
label_st = st.builds(Label, ms_times, st.sampled_from(["full", "incr"]))


# -- labels and values ----------------------------------------------------------------------
@given(label_st)
def test_label_round_trip(lb: Label) -> None:
    text = str(lb)
    assert labels.parse(text) == lb
    assert text.startswith(lb.kind + "-") and len(text) == len("full-20210712.155951.123")


def test_label_is_gmt() -> None:
    assert str(Label(1626105591123, "full")) == "full-20210712.155951.123"


@pytest.mark.parametrize("bad", ["", "..", "full-../x", "a/b", "full-20210712.155951.123/..",
                                 "incr-2021", "full-20211340.000000.000", "partial-20210712."
                                 "155951.123", "full\0"])
def test_bad_labels_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        labels.parse(bad)


@given(st.text(min_size=1))
def test_check_name_refuses_path_tricks(text: str) -> None:
    bad = any(c in text for c in "/\\\0") or ".." in text or text in (".",)
    if bad:
        with pytest.raises(UsageError):
            labels.check_name(text)
    else:
        assert labels.check_name(text) == text


def test_resolve_compact_label_from_the_guide() -> None:
    known = [Label(1638279156000, "full"), Label(1638279156500, "incr")]
    assert labels.resolve("full20211130133236", known) == known[0]
    assert labels.resolve("full-20211130.133236.000", known) == known[0]
    with pytest.raises(NotFound):
        labels.resolve("full20201130133236", known)
    with pytest.raises(UsageError):
        labels.resolve("nonsense", known)


@pytest.mark.parametrize("text,ms", [("1d", 86_400_000), ("2w", 14 * 86_400_000),
                                     ("10D", 864_000_000)])
def test_intervals(text: str, ms: int) -> None:
    assert labels.parse_interval(text) == ms
    assert labels.parse_interval(labels.format_interval(ms)) == ms


@pytest.mark.parametrize("bad", ["0d", "1m", "d", "-1d", "1.5d", ""])
def test_bad_intervals(bad: str) -> None:
    with pytest.raises(UsageError):
        labels.parse_interval(bad)


def test_ages_by_calendar() -> None:
    now = labels.parse("full-20210331.120000.000").ms
    assert labels.parse_age("1m").before(now) == labels.parse("full-20210228.120000.000").ms
    assert labels.parse_age("1y").before(now) == labels.parse("full-20200331.120000.000").ms
    assert labels.parse_age("7d").before(now) == now - 7 * labels.DAY_MS
    for bad in ("7", "0d", "7w", "x"):
        with pytest.raises(UsageError):
            labels.parse_age(bad)


@given(st.integers(1, 400), st.sampled_from("dmy"), ms_times)
def test_age_before_is_earlier(n: int, unit: str, now: int) -> None:
    assert labels.parse_age(f"{n}{unit}").before(now) < now


def test_min_free_values() -> None:
    assert labels.parse_min_free("0").disabled
    assert labels.parse_min_free("25%").required(1000) == 250
    assert labels.parse_min_free("300MB").required(0) == 300 * 1024 ** 2
    assert labels.parse_min_free("50GB").required(0) == 50 * 1024 ** 3
    for bad in ("lots", "101%", "-5MB", "5XB"):
        with pytest.raises(UsageError):
            labels.parse_min_free(bad)


def test_delete_specs() -> None:
    assert labels.parse_delete("7d").age == labels.Age(7, "d")
    lb = labels.parse_delete("full-20210712.155951.123").label
    assert lb == Label(1626105591123, "full")
    assert labels.parse_delete("2021/07/01").before_ms == labels.parse(
        "full-20210701.000000.000").ms  # TZ=UTC in tests
    assert labels.parse_delete("2021/07/01-12:30:00").before_ms == labels.parse(
        "full-20210701.123000.000").ms
    for bad in ("yesterday", "full-x", "2021/13/01", "7x"):
        with pytest.raises(UsageError):
            labels.parse_delete(bad)


# -- XML files --------------------------------------------------------------------------------
text_st = st.text(alphabet=string.ascii_letters + string.digits + " -_.@éü<>&\"'", max_size=20)
ids = st.uuids().map(str)


@given(st.lists(st.builds(xmlfiles.AccountEntry, ids, text_st.map(lambda t: t + "@x.org"),
                          st.none() | label_st.map(str)), unique_by=lambda e: e.email))
def test_accounts_xml_round_trip(entries: list[xmlfiles.AccountEntry]) -> None:
    data = xmlfiles.to_bytes(xmlfiles.accounts_to_xml(entries))
    back = xmlfiles.accounts_from_xml(xmlfiles.parse_bytes(data, where="t"))
    assert sorted(back, key=lambda e: e.email) == sorted(entries, key=lambda e: e.email)


sessions_st = st.builds(
    Session, label=label_st.map(str), type=st.sampled_from(["full", "incremental"]),
    start_ms=ms_times, status=st.sampled_from(["completed", "aborted", "failed"]),
    server=text_st, server_id=ids, mode=st.sampled_from(attrs.MODES),
    zip=st.sampled_from(["zip", "zipStore", "noZip"]), end_ms=st.none() | ms_times,
    min_redo_seq=st.none() | st.integers(0, 2 ** 40), max_redo_seq=st.none() | st.integers(0, 9),
    skip_search_index=st.booleans(), skip_blobs=st.booleans(), skip_hsm_blobs=st.booleans(),
    sys=st.booleans(),
    accounts=st.lists(st.builds(SessionAccount, ids, text_st,
                                st.sampled_from(xmlfiles.ACCOUNT_STATUSES),
                                st.none() | st.integers(1, 10 ** 6),
                                st.none() | text_st)).map(tuple),
    errors=st.lists(text_st.filter(bool)).map(tuple),
    redologs=st.lists(text_st.filter(bool)).map(tuple),
    stats=st.dictionaries(st.sampled_from(["blobBytesWritten", "blobsLinked", "bytes"]),
                          st.integers(0, 2 ** 50)))


@given(sessions_st)
def test_session_xml_round_trip(s: Session) -> None:
    data = xmlfiles.to_bytes(xmlfiles.session_to_xml(s))
    assert xmlfiles.session_from_xml(xmlfiles.parse_bytes(data, where="t")) == s


@given(st.builds(AccountMeta, ids, text_st, st.integers(1, 10 ** 6), st.integers(0, 2 ** 31),
                 ms_times, ms_times, st.integers(0, 2 ** 40), st.integers(0, 10 ** 6),
                 st.integers(0, 2 ** 40), st.integers(1, 256),
                 st.sampled_from(["zip", "file", "none"]),
                 st.sampled_from(["zip", "zipStore", "noZip"]), st.booleans(), st.booleans()))
def test_meta_xml_round_trip(m: AccountMeta) -> None:
    data = xmlfiles.to_bytes(xmlfiles.meta_to_xml(m))
    assert xmlfiles.meta_from_xml(xmlfiles.parse_bytes(data, where="t")) == m


dir_dumps = st.fixed_dictionaries({
    "domains": st.lists(st.fixed_dictionaries({"name": text_st, "id": ids,
                                               "status": st.sampled_from(attrs.DOMAIN_STATUSES)})),
    "cos": st.lists(st.fixed_dictionaries({"name": text_st, "id": ids, "attrs": text_st})),
    "accounts": st.lists(st.fixed_dictionaries({
        "id": ids, "email": text_st, "domain": text_st, "cos": text_st,
        "status": st.sampled_from(attrs.ACCOUNT_STATUSES),
        "mailbox_id": st.none() | st.integers(1, 10 ** 6), "created_ms": ms_times})),
    "attrs": st.lists(st.fixed_dictionaries({"scope": text_st, "name": text_st,
                                             "value": text_st})),
})


@given(dir_dumps)
def test_directory_xml_round_trip(d: dict) -> None:
    data = xmlfiles.to_bytes(xmlfiles.directory_to_xml(d))
    assert xmlfiles.directory_from_xml(xmlfiles.parse_bytes(data, where="t")) == d


@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_.]{0,20}", fullmatch=True), text_st))
def test_localconfig_round_trip(values: dict[str, str]) -> None:
    assert localconfig.parse(localconfig.render(values)) == values


def test_bad_xml_is_a_format_error(tmp_path: Path) -> None:
    (tmp_path / "accounts.xml").write_text("<accounts><account")
    with pytest.raises(FormatError, match="accounts.xml"):
        Target(tmp_path).accounts()
    with pytest.raises(FormatError):
        localconfig.parse(b"<notlocalconfig/>")


def test_localconfig_edit(tmp_path: Path) -> None:
    changed = localconfig.edit(tmp_path, ["backup_archived_redolog_keep_time=60",
                                          "custom_key=x"])
    assert changed == {"backup_archived_redolog_keep_time": "60", "custom_key": "x"}
    assert localconfig.load(tmp_path)["backup_archived_redolog_keep_time"] == "60"
    for bad in (["mysql_backup_retention=many"], ["no_equals"], ["bad key=1"]):
        with pytest.raises(UsageError):
            localconfig.edit(tmp_path, bad)
    assert localconfig.load(tmp_path) == {"backup_archived_redolog_keep_time": "60",
                                          "custom_key": "x"}


# -- zmprov attributes ------------------------------------------------------------------------
def test_attrs_normalised_and_resolved() -> None:
    changes = attrs.plan_changes({}, ["zimbraBackupMode", "auto-grouped",
                                      "zimbraBackupAutoGroupedThrottled", "true",
                                      "zimbrabackupminfreespace", "25%"])
    assert changes == {"zimbraBackupMode": ["Auto-Grouped"],
                       "zimbraBackupAutoGroupedThrottled": ["TRUE"],
                       "zimbraBackupMinFreeSpace": ["25%"]}
    server = attrs.plan_changes({}, ["zimbraBackupAutoGroupedNumGroups", "3"])
    cfg = attrs.backup_config(changes, server)
    assert cfg.auto_grouped and cfg.throttled and cfg.groups == 3
    assert cfg.min_free.required(100) == 25
    assert attrs.backup_config({}, {}) == attrs.BackupConfig()


def test_multi_valued_attrs() -> None:
    cur = attrs.plan_changes({}, ["zimbraBackupReportEmailRecipients", "a@x.org",
                                  "zimbraBackupReportEmailRecipients", "b@x.org"])
    assert cur["zimbraBackupReportEmailRecipients"] == ["a@x.org", "b@x.org"]
    more = attrs.plan_changes(cur, ["+zimbraBackupReportEmailRecipients", "c@x.org",
                                    "-zimbraBackupReportEmailRecipients", "a@x.org"])
    assert more["zimbraBackupReportEmailRecipients"] == ["b@x.org", "c@x.org"]


@pytest.mark.parametrize("args", [["zimbraBackupMode"], ["zimbraNoSuchThing", "1"],
                                  ["zimbraBackupMode", "Sometimes"],
                                  ["zimbraBackupAutoGroupedInterval", "3m"],
                                  ["zimbraBackupAutoGroupedNumGroups", "0"],
                                  ["+zimbraBackupMode", "Standard"],
                                  ["zimbraBackupReportEmailRecipients", "nobody"]])
def test_bad_attrs(args: list[str]) -> None:
    with pytest.raises(UsageError):
        attrs.plan_changes({}, args)


# -- deletion -----------------------------------------------------------------------------------
def _info(lb: Label, *, kind_accounts: list[tuple[str, str]], min_seq: int,
          running: bool = False, finished: bool = True) -> SessionInfo:
    rec = Session(str(lb), lb.type, lb.ms, "completed", min_redo_seq=min_seq,
                  max_redo_seq=min_seq + 1,
                  accounts=tuple(SessionAccount(i, e, "COMPLETED") for i, e in kind_accounts))
    return SessionInfo(lb, Path("/t") / str(lb), rec, finished, running)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.sampled_from(["full", "incr"]),
                          st.booleans()), min_size=1, max_size=12, unique_by=lambda t: t[0]),
       st.integers(0, 70), st.booleans())
def test_delete_plan(sess: list[tuple[int, str, bool]], cut_day: int, by_label: bool) -> None:
    day = labels.DAY_MS
    infos = [_info(Label(d * day, k), kind_accounts=[("id-a", "a@x"), (f"id-{d % 3}", "b@x")],
                   min_seq=d * 10, running=r and i == len(sess) - 1)
             for i, (d, k, r) in enumerate(sorted(sess))]
    logs = [(seq, f"redo-{seq}.log") for seq in range(0, 700, 7)]
    now = 80 * day
    if by_label:
        target = infos[min(cut_day, len(infos) - 1)]
        spec = labels.DeleteSpec(label=target.label)
    else:
        spec = labels.DeleteSpec(age=labels.Age(now // day - cut_day, "d"))
    p = deletion.plan(infos, spec, now_ms=now, redologs=logs)
    gone = {s.label for s in p.sessions}
    for s in infos:
        if s.running:
            assert s.label not in gone
        elif by_label:
            assert (s.label in gone) == (s.label <= spec.label)
        else:
            assert (s.label in gone) == (s.label.ms < cut_day * day)
    kept = [s for s in infos if s.label not in gone]
    # No remaining session loses a redo log it may need.
    need = min((s.record.min_redo_seq for s in kept), default=None)
    for seq, _ in p.redologs:
        assert need is not None and seq < need - 1 or need is None
    if any(s.running for s in kept):
        assert p.redologs == ()
    # accounts.xml names only remaining full sessions.
    fulls = {str(s.label) for s in kept if s.label.kind == "full"}
    assert {e.latest_full for e in p.accounts} <= fulls


def test_delete_unknown_label() -> None:
    with pytest.raises(NotFound):
        deletion.plan([], labels.DeleteSpec(label=Label(5, "full")), now_ms=10, redologs=[])


# -- zmbackupquery ----------------------------------------------------------------------------
def test_query_output_as_zimbra() -> None:
    lb = labels.parse("full-20210712.155951.123")
    rec = Session(str(lb), "full", lb.ms, "aborted", end_ms=lb.ms + 20_333, min_redo_seq=12,
                  max_redo_seq=14, accounts=(SessionAccount("i1", "u1@x.org", "COMPLETED"),
                                             SessionAccount("i2", "u2@x.org", "NOTSTARTED")))
    info = SessionInfo(lb, Path("/t"), rec, True, False)
    lines = query.describe(info, verbose=True)
    assert lines[:6] == ["Label:   full-20210712.155951.123", "Type:    full",
                         "Status:  completed (aborted by command)",
                         "Started: Mon, 2021/07/12 15:59:51.123 UTC",
                         "Ended:   Mon, 2021/07/12 16:00:11.456 UTC",
                         "Redo log sequence range: 12 .. 14"]
    assert "Number of accounts: 2" in lines
    assert "  u2@x.org: not started" in lines
    tmp = SessionInfo(lb, Path("/t"), None, False, False)
    assert query.display_status(tmp) == "missing, incomplete, or invalid"
    assert query.display_status(SessionInfo(lb, Path("/t"), None, False, True)) == \
        "in progress"
    assert query.select([info, tmp], query.Query(type="incremental")) == []
    assert query.select([info], query.Query(account="U1@x.org")) == [info]
    with pytest.raises(NotFound):
        query.select([info], query.Query(label=Label(1, "incr")))
    with pytest.raises(UsageError):
        query.Query(type="differential")


# -- the free-space check ---------------------------------------------------------------------
def test_min_free_space_refuses(tmp_path: Path) -> None:
    t = Target(tmp_path)
    t.check_min_free(labels.parse_min_free("25%"), space=lambda: (300, 1000))
    with pytest.raises(VolumeError, match="zimbraBackupMinFreeSpace"):
        t.check_min_free(labels.parse_min_free("25%"), space=lambda: (200, 1000))
    with pytest.raises(VolumeError):
        t.check_min_free(labels.parse_min_free("1MB"), space=lambda: (1000, 10 ** 9))
    t.check_min_free(labels.parse_min_free("0"), space=lambda: (0, 10 ** 9))
