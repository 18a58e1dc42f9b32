"""`standby.timefmt`: Zimbra's ten input formats (nine of SoapCLI plus the guide's own), parsed in
local time, non-lenient, the whole string; and the output stamps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standby import timefmt
from standby.errors import UsageError


@pytest.fixture
def local_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run in a zone far from UTC with DST, so local-time parsing is visible."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield "America/New_York"
    monkeypatch.undo()
    time.tzset()


def _local_ms(y: int, mo: int, d: int, h: int, mi: int, s: int, ms: int = 0,
              zone: str = "America/New_York") -> int:
    dt = datetime(y, mo, d, h, mi, s, tzinfo=ZoneInfo(zone))
    return int(dt.timestamp()) * 1000 + ms


# (text, format name, expected local fields)
TEN = [
    ("2021/10/17 08:00:00", "yyyy/MM/dd HH:mm:ss", (2021, 10, 17, 8, 0, 0, 0)),
    ("2021/10/17 08:00:00 123", "yyyy/MM/dd HH:mm:ss SSS", (2021, 10, 17, 8, 0, 0, 123)),
    ("2021/10/17 08:00:00.123", "yyyy/MM/dd HH:mm:ss.SSS", (2021, 10, 17, 8, 0, 0, 123)),
    ("2021/10/17-08:00:00-123", "yyyy/MM/dd-HH:mm:ss-SSS", (2021, 10, 17, 8, 0, 0, 123)),
    ("2021/10/17-08:00:00", "yyyy/MM/dd-HH:mm:ss", (2021, 10, 17, 8, 0, 0, 0)),
    ("20211017.080000.123", "yyyyMMdd.HHmmss.SSS", (2021, 10, 17, 8, 0, 0, 123)),
    ("20211017.080000", "yyyyMMdd.HHmmss", (2021, 10, 17, 8, 0, 0, 0)),
    ("20211017080000123", "yyyyMMddHHmmssSSS", (2021, 10, 17, 8, 0, 0, 123)),
    ("20211017080000", "yyyyMMddHHmmss", (2021, 10, 17, 8, 0, 0, 0)),
    ("2021/10/17 08:00:00:000", "yyyy/MM/dd HH:mm:ss:SSS", (2021, 10, 17, 8, 0, 0, 0)),
]


def test_the_ten_formats_are_zimbras_nine_plus_the_guides() -> None:
    assert timefmt.FORMAT_NAMES == tuple(name for _t, name, _f in TEN)


@pytest.mark.parametrize("text,name,fields", TEN, ids=[t[1] for t in TEN])
def test_each_format_parses_in_local_time(local_tz: str, text: str, name: str,
                                          fields: tuple[int, ...]) -> None:
    got = timefmt.parse_detail(text, option="--fromTime")
    assert got.format == name
    assert got.epoch_ms == _local_ms(*fields)
    # 08:00 in New York (EDT, UTC-4) is 12:00 UTC.
    assert datetime.fromtimestamp(got.epoch_ms / 1000, UTC).hour == 12
    assert timefmt.parse(text) == got.epoch_ms


def test_winter_time_uses_the_standard_offset(local_tz: str) -> None:
    assert timefmt.parse("2021/01/17 08:00:00") == _local_ms(2021, 1, 17, 8, 0, 0)
    assert datetime.fromtimestamp(timefmt.parse("2021/01/17 08:00:00") / 1000,
                                  UTC).hour == 13


def test_single_digit_fields_where_delimited(local_tz: str) -> None:
    # SimpleDateFormat reads delimited numeric fields of any width; milliseconds are a count.
    assert timefmt.parse("2021/1/7 8:5:3") == _local_ms(2021, 1, 7, 8, 5, 3)
    assert timefmt.parse("2021/01/07 08:05:03.5") == _local_ms(2021, 1, 7, 8, 5, 3, 5)


NOT_DATES = [
    "2021/13/01 00:00:00",  # month 13
    "2021/00/10 00:00:00",  # month 0
    "2021/02/29 00:00:00",  # not a leap year
    "2021/04/31 00:00:00",  # April has 30 days
    "2021/10/17 24:00:00",  # hour 24
    "2021/10/17 08:60:00",  # minute 60
    "2021/10/17 08:00:60",  # second 60
    "20211301.000000",
    "20210230000000",
    "2021/13/45 25:00:00",
]


@pytest.mark.parametrize("text", NOT_DATES)
def test_non_lenient(local_tz: str, text: str) -> None:
    with pytest.raises(UsageError, match="not a valid date-time") as e:
        timefmt.parse(text, option="--since")
    assert e.value.exit_code == 2 and "--since" in e.value.message


def test_leap_day_is_a_date(local_tz: str) -> None:
    assert timefmt.parse("2024/02/29 12:00:00") == _local_ms(2024, 2, 29, 12, 0, 0)


NOT_MATCHING = [
    "", "yesterday", "2021/10/17", "2021-10-17 08:00:00", "2021/10/17T08:00:00",
    "2021/10/17 08:00:00 extra", "x2021/10/17 08:00:00", "2021/10/17 08:00:00.1234",
    "20211017.0800", "202110170800", "2021101708000012", "2021/10/17 08:00",
]


@pytest.mark.parametrize("text", NOT_MATCHING)
def test_whole_string_must_match_one_format(text: str) -> None:
    with pytest.raises(UsageError) as e:
        timefmt.parse(text, option="--toTime")
    assert e.value.exit_code == 2
    assert "--toTime" in e.value.message
    if "valid" not in e.value.message:
        assert e.value.hint and all(f'"{n}"' in e.value.hint for n in timefmt.FORMAT_NAMES)


def test_a_local_time_in_the_spring_forward_gap_is_rejected(local_tz: str) -> None:
    with pytest.raises(UsageError):
        timefmt.parse("2021/03/14 02:30:00")


@settings(max_examples=200, deadline=None)
@given(ms=st.integers(0, 4_102_444_800_000 - 1))
def test_gmt_stamp_round_trip(ms: int) -> None:
    stamp = timefmt.gmt_stamp(ms)
    assert len(stamp) == 19 and stamp[8] == "." and stamp[15] == "."
    assert timefmt.parse_gmt_stamp(stamp) == ms
    assert stamp == datetime.fromtimestamp(ms / 1000, UTC).strftime(
        "%Y%m%d.%H%M%S") + f".{ms % 1000:03d}"


def test_gmt_stamp_ignores_the_local_zone(local_tz: str) -> None:
    assert timefmt.gmt_stamp(1_700_000_000_123) == "20231114.221320.123"
    with pytest.raises(UsageError):
        timefmt.parse_gmt_stamp("20231114.251320.123")
    with pytest.raises(UsageError):
        timefmt.parse_gmt_stamp("2023-11-14")


def test_output_stamps_are_local(local_tz: str) -> None:
    ms = 1_700_000_000_123  # 2023-11-14 22:13:20.123 UTC, 17:13:20 EST
    assert timefmt.echo(ms) == "2023/11/14 17:13:20"
    assert timefmt.verify_stamp(ms) == "2023/11/14 17:13:20.123 EST"
    assert timefmt.iso_utc(ms) == "2023-11-14T22:13:20.123Z"
    # Zimbra echoes a parsed time back in the same local form.
    assert timefmt.echo(timefmt.parse("2023/11/14 17:13:20")) == "2023/11/14 17:13:20"


@settings(max_examples=200, deadline=None)
@given(dt=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31)),
       fmt=st.sampled_from(range(10)))
def test_any_utc_time_parses_back(dt: datetime, fmt: int) -> None:
    """In UTC (the test session's zone), every format reads back what it was written as."""
    assert time.strftime("%Z") in ("UTC", "GMT")
    ms = dt.microsecond // 1000
    base = dt.replace(microsecond=0)
    texts = [
        base.strftime("%Y/%m/%d %H:%M:%S"), base.strftime("%Y/%m/%d %H:%M:%S ") + f"{ms:03d}",
        base.strftime("%Y/%m/%d %H:%M:%S.") + f"{ms:03d}",
        base.strftime("%Y/%m/%d-%H:%M:%S-") + f"{ms:03d}", base.strftime("%Y/%m/%d-%H:%M:%S"),
        base.strftime("%Y%m%d.%H%M%S.") + f"{ms:03d}", base.strftime("%Y%m%d.%H%M%S"),
        base.strftime("%Y%m%d%H%M%S") + f"{ms:03d}", base.strftime("%Y%m%d%H%M%S"),
        base.strftime("%Y/%m/%d %H:%M:%S:") + f"{ms:03d}",
    ]
    with_ms = fmt in (1, 2, 3, 5, 7, 9)
    want = int(base.replace(tzinfo=UTC).timestamp()) * 1000 + (ms if with_ms else 0)
    got = timefmt.parse_detail(texts[fmt])
    assert got.epoch_ms == want
    assert got.format == timefmt.FORMAT_NAMES[fmt]
