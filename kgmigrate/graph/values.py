"""Neo4j's value types that JSON lacks, kept exact wherever kgmigrate stores a state.

Undo records, snapshots and fingerprints are JSON. Neo4j properties may also be dates, times,
datetimes (with a fixed offset or a named zone), durations, points and byte arrays, and lists of
them; the driver reads them as `neo4j.time` / `neo4j.spatial` objects and `bytes`. Each is
written as a tagged object `{"$kgm": type, "v": parts}` holding every component (nanoseconds,
offset seconds, zone name, SRID), and read back as the same driver object, which the driver
sends as the same Neo4j value: a restore writes back exactly what was captured. A property map
never holds a map as a value (Neo4j stores none), so a tagged object cannot be mistaken for data.
"""

import base64
import datetime
from typing import Any

import pytz  # type: ignore[import-untyped]  # the driver's own dependency
from neo4j.spatial import CartesianPoint, Point, WGS84Point
from neo4j.time import Date, DateTime, Duration, Time

TAG = "$kgm"
NATIVE_TYPES: tuple[type, ...] = (Date, Time, DateTime, Duration, Point, bytes, bytearray)
_POINTS = {7203: CartesianPoint, 9157: CartesianPoint, 4326: WGS84Point, 4979: WGS84Point}


_PLAIN = frozenset({str, int, float, bool, type(None)})


def jsonable(value: Any) -> Any:
    """`value` with every Neo4j-only value replaced by its tagged object; `value` itself when
    there is none. (Points are tuples, which `json` would write as plain lists before asking
    any `default` hook, so the walk cannot be left to the encoder.)"""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list:
        items = [jsonable(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if kind is dict:
        pairs = {k: jsonable(v) for k, v in value.items()}
        return value if all(pairs[k] is v for k, v in value.items()) else pairs
    if isinstance(value, NATIVE_TYPES):
        return encode(value)
    return value


def encode(value: Any) -> Any:
    """The tagged object of one Neo4j-only value (also `json.dumps(default=encode)`)."""
    if isinstance(value, DateTime):
        zone, offset = _zone(value)
        if zone is not None:  # a named zone: the instant in UTC, as the driver reads it
            value = value.astimezone(pytz.UTC)
        return {TAG: "datetime", "v": [*_date(value.date()), *_time(value.time()), zone,
                                       offset]}
    if isinstance(value, Date):
        return {TAG: "date", "v": _date(value)}
    if isinstance(value, Time):
        return {TAG: "time", "v": [*_time(value), *_zone(value)]}
    if isinstance(value, Duration):
        return {TAG: "duration", "v": [value.months, value.days, value.seconds,
                                       value.nanoseconds]}
    if isinstance(value, Point):
        return {TAG: "point", "v": [value.srid, *value]}
    if isinstance(value, bytes | bytearray):
        return {TAG: "bytes", "v": base64.b64encode(value).decode()}
    raise TypeError(f"a {type(value).__name__} value cannot be stored")


def decode(obj: dict[str, Any]) -> Any:
    """`json.loads(object_hook=decode)`: the driver object back from its tagged form."""
    if len(obj) != 2 or TAG not in obj:
        return obj
    kind, v = obj[TAG], obj["v"]
    if kind == "date":
        return Date(*v)
    if kind == "time":  # the driver takes a time's offset from pytz's tzinfo only
        return Time(v[0], v[1], v[2], v[3],
                    tzinfo=None if v[5] is None else pytz.FixedOffset(v[5] // 60))
    if kind == "datetime":
        year, month, day, hour, minute, second, nanosecond = v[:7]
        if v[7] is not None:
            utc = DateTime(year, month, day, hour, minute, second, nanosecond, tzinfo=pytz.UTC)
            return utc.as_timezone(pytz.timezone(v[7]))
        offset = None if v[8] is None else datetime.timezone(datetime.timedelta(seconds=v[8]))
        # (a plain offset, never pytz's UTC: the driver would send that as the zone [UTC])
        return DateTime(year, month, day, hour, minute, second, nanosecond, tzinfo=offset)
    if kind == "duration":
        return Duration(months=v[0], days=v[1], seconds=v[2], nanoseconds=v[3])
    if kind == "point":
        return _POINTS.get(v[0], Point)(v[1:])
    if kind == "bytes":
        return base64.b64decode(v)
    return obj


def _date(d: Date) -> list[int]:
    return [d.year, d.month, d.day]


def _time(t: Time) -> list[int]:
    return [t.hour, t.minute, t.second, t.nanosecond]


def _zone(value: Time | DateTime) -> list[Any]:
    """[zone name or None, offset seconds or None]: a named zone stays named (its offset
    follows the zone's rules), a fixed offset stays fixed, a local value has neither."""
    tz = value.tzinfo
    if tz is None:
        return [None, None]
    key = getattr(tz, "key", None) or getattr(tz, "zone", None)
    # The driver reads offset Z (what `datetime()` gives by default) as pytz's UTC, the very
    # object it also reads the named zone [UTC] as: Z is by far the more common, so UTC is
    # taken for the offset (a named [UTC] comes back as Z; docs/graph-servers.md).
    if key and tz is not pytz.utc:
        return [str(key), None]
    offset = value.utcoffset()
    return [None, int(offset.total_seconds()) if offset is not None else None]
