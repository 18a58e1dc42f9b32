"""getPrintableData of the ops whose text is more than a template (`ops` uses these).

Each function is one Zimbra op's `getPrintableData()` read off the source, taking the op and
the record's version and returning the text (None where Zimbra's is null). Collections print in
the order Zimbra iterates the Java collection the reader built (`javahash`); Metadata values as
Java prints them (`metadata`). Where Zimbra prints its calendar model (`Invite.toString()`,
`ICalTimeZone.toString()`, `ReplyInfo.toString()`) these print the Metadata it was decoded
from, decoded and encoded again (`metadata.canonical`): the one place the text is not Zimbra's.
"""

from __future__ import annotations

from typing import Any

from standby.redolog import javafmt, javahash, metadata
from standby.redolog.javafmt import TYPE_NAMES, jstr, type_name


def custom(key: str | None, value: str | None) -> str:
    return jstr(metadata.custom_text(key, value))


def contact_attrs(attrs: tuple[tuple[str | None, str | None], ...]) -> str:
    """CreateContact/ModifyContact's fields as the decoded HashMap(numAttrs) iterates them."""
    if not attrs:
        return ""
    values = dict(attrs)
    order = javahash.hashmap_order([k for k, _ in attrs], capacity=len(attrs))
    return ", attrs={" + "".join(f"\n    {jstr(k)}: {jstr(values[k])}" for k in order) + "\n}"


def id_map(entries: tuple[tuple[Any, ...], ...]) -> str:
    """CopyItem's `[src,dest,uuid]` entries in the order of the HashMaps the reader builds."""
    dests: dict[int, int] = {}
    uuids: dict[int, str | None] = {}
    for e in entries:
        dests[e[0]] = e[1]
        uuids[e[0]] = e[2] if len(e) > 2 else None
    return "".join(f"[{s},{dests[s]},{jstr(uuids[s])}]"
                   for s in javahash.hashmap_order(list(dests)))


def ids_and_uuids(pairs: tuple[tuple[Any, ...], ...]) -> str:
    return ", ".join(f"{p[0]} ({jstr(p[1] if len(p) > 1 else None)})" for p in pairs)


def policies(items: tuple[tuple[str | None, str | None], ...]) -> str:
    return jstr(tuple(
        javafmt.to_string_helper("Policy", ("type", "system"), ("id", pid), ("name", None),
                                 ("lifetimeString", None)) if pid is not None else
        javafmt.to_string_helper("Policy", ("type", "user"), ("id", None), ("name", None),
                                 ("lifetimeString", life))
        for pid, life in items))



def reindex_mailbox(o: Any, version: Any) -> str | None:
    s = f"Completion={o.completion_id} SkipDelete={'TRUE' if o.skip_delete else 'FALSE'}"
    if o.item_ids is not None:
        return s + " ITEMIDS[" + ",".join(map(str, javahash.hashmap_order(o.item_ids))) + "]"
    if o.types is not None:
        types = sorted({t if t in TYPE_NAMES else -1 for t in o.types})  # an EnumSet
        return s + " TYPES[" + jstr(tuple(type_name(t) for t in types)) + "]"
    return None



class Raw(str):
    """Text already in Java's form (jstr prints it as it is)."""



def message(o: Any, version: Any = None) -> str:
    s = [f"id={o.msg_id}, rcpt={o.rcpt}, rcvDate={o.rcv_date}, "
         f'shared={jstr(o.shared)}, blobDigest="{o.digest}", size={o.msg_size}']
    if o.data is not None:
        s.append(f", dataLen={len(o.data)}")
    s.append(f", folder={o.folder_id}, conv={o.conv_id}, convFirstMsgId={o.conv_first_msg_id}")
    if o.merged_conv_ids:
        s.append(f", mergedConvIds={jstr(o.merged_conv_ids)}")
    if o.cal_item_id != 0:
        s.append(f", calItemId={o.cal_item_id}")
    s.append(f", calItemPartStat={jstr(o.part_stat)}, noICal={jstr(o.no_ical)}")
    ext = metadata.custom_text(o.custom_key, o.custom_value)
    if ext is not None:
        s.append(f", extended={ext}")
    # Before 1.33 the record holds tag ids (mTagIds), which Zimbra does not print.
    tags = "" if version is not None and version < (1, 33) else ",".join(o.tags or ())
    s.append(f", flags={o.flags}, tags=[{tags}]")
    s.append(f", bodyType={o.body_type}")
    s.append(f", linkSourcePath={jstr(o.path)}" if o.body_type == 2
             else f", path={jstr(o.path)}")
    return "".join(s)



def calendar_data(d: tuple[Any, ...]) -> str:
    return javafmt.to_string_helper("SetCalendarItemData",
                                    ("inv", Raw(metadata.canonical(d[1] or ""))),
                                    ("hasBody", d[3] is not None))


def set_calendar_item(o: Any, version: Any) -> str:
    s = [f"calItemId={o.cal_item_id}, calItemPartStat={jstr(o.part_stat)}, folder={o.folder_id}"]
    if version is None or version >= (1, 11):
        s.append(f", flags={o.flags}, tags={javafmt.encode_tags(o.tags)}")
    s.append("\n")
    if o.default is not None:
        s.append(f"Default={calendar_data(o.default)}\n")
    for i, ex in enumerate(o.exceptions):
        s.append(f"Exception{i}={calendar_data(ex)}\n")
    for i, reply in enumerate(o.replies or ()):
        s.append(f"Reply{i}={metadata.canonical(reply or '')}\n")
    s.append(f"nextAlarm={o.next_alarm}\n")
    return "".join(s)



def fix_calendar_item_tz(o: Any, version: Any) -> str:
    s = f"id={o.item_id}"
    if not o.replacements:
        return s
    tz = dict(o.replacements)
    order = javahash.hashmap_order([k for k, _ in o.replacements], capacity=len(o.replacements))
    return s + ", replacementMap=[" + "".join(
        f'\noldTZID="{jstr(k)}"\n==> newTZ: {metadata.canonical(tz[k] or "")},'
        for k in order) + "]"
