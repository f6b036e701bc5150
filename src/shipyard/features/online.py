"""Online stores: each key's latest feature values, for serving, behind one small Protocol.

Two back ends: SQLite (the default, a file in the Shipyard home) and Redis
(``SHIPYARD_ONLINE_STORE=redis://host:6379/0``; ``?key_prefix=NAME`` keeps
several stores apart in one Redis). A record is the key's newest source row:
its event time, created time and feature values. ``write`` keeps whichever of
the stored and the given record is newer (event time, then created time), so
materializing the same rows twice, or an older window after a newer one,
changes nothing.

>>> store = SqliteOnlineStore(":memory:")
>>> store.write("v", [Record(("1001",), 100.0, None, {"x": 1.5})])
1
>>> store.read("v", [("1001",), ("9",)])
[Record(key=('1001',), event_ts=100.0, created_ts=None, values={'x': 1.5}), None]
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import orjson

from shipyard.errors import ConfigError, StoreError, reason

__all__ = [
    "OnlineStore",
    "OnlineStoreUnavailable",
    "Record",
    "RedisOnlineStore",
    "SqliteOnlineStore",
    "open_online_store",
]

Key = tuple[str, ...]

# json.dumps's own encoder for one string (ASCII, as its default ensure_ascii writes it).
_quoted: Any = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
_INT64_SIZE = 2.0**63  # a float this large may be an integer orjson could not hold


class OnlineStoreUnavailable(StoreError):
    """The online store cannot be reached (serving answers 503, never a guess)."""


@dataclass(frozen=True)
class Record:
    key: Key
    event_ts: float  # seconds since the epoch, UTC
    created_ts: float | None
    values: dict[str, Any]

    def is_newer(self, other: Record) -> bool:
        """Strictly newer: a later event, or the same event created later."""
        return (self.event_ts, self.created_ts or 0.0) > (other.event_ts, other.created_ts or 0.0)


def encode_key(key: Sequence[object]) -> str:
    """One text per key; values are compared as text, so 1001 and "1001" are one key.

    The text ``json.dumps([str(v), ...], separators=(",", ":"))`` gives, built from
    its C string encoder: a serving read encodes every request's key, and a
    ``json.dumps`` with its own separators builds an encoder per call.
    """
    return "[" + ",".join([_quoted(str(v)) for v in key]) + "]"


def _dump(record: Record) -> str:
    return json.dumps({"e": record.event_ts, "c": record.created_ts, "v": record.values})


def _decode(text: str | bytes) -> Any:
    """``json.loads`` of a stored record, by orjson where it gives the very same objects.

    A serving read decodes one record per request's key; orjson takes a few times
    less time. It refuses NaN and Infinity (which ``json.dumps`` writes), and reads
    an integer beyond 64 bits as a float (at least 2**63 in size): such a record is
    read again by ``json``, as it was written. Feature values are scalars (the
    dtypes a view declares), so the record's top two levels are all there is to check.
    """
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    for value in (data.get("v") or {}).values():
        if type(value) is float and not -_INT64_SIZE < value < _INT64_SIZE:
            return json.loads(text)
    for value in (data.get("e"), data.get("c")):
        if type(value) is float and not -_INT64_SIZE < value < _INT64_SIZE:
            return json.loads(text)
    return data


def _load(key: Key, text: str | bytes) -> Record:
    data = _decode(text)
    return Record(key, data["e"], data["c"], data["v"])


class OnlineStore(Protocol):
    """Where materialized features live; ``target`` names it in messages and watermarks."""

    target: str

    def write(self, view: str, records: Sequence[Record]) -> int:
        """Store the records newer than what is stored; return how many were stored."""
        ...

    def read(self, view: str, keys: Sequence[Key]) -> list[Record | None]:
        """The stored record of each key (None: never materialized), in order."""
        ...

    def ping(self) -> None:
        """Raise :class:`OnlineStoreUnavailable` unless the store answers (a readiness check)."""
        ...

    def close(self) -> None: ...


class SqliteOnlineStore:
    """An SQLite file: one row per view and key, the record as JSON."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.target = f"sqlite:{self.path}"
        self._local = threading.local()

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            try:
                con = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
                con.execute("PRAGMA journal_mode=WAL")
                con.execute(
                    "CREATE TABLE IF NOT EXISTS online_features (view TEXT NOT NULL, "
                    "key TEXT NOT NULL, event_ts REAL NOT NULL, created_ts REAL, "
                    "record TEXT NOT NULL, PRIMARY KEY (view, key))"
                )
            except sqlite3.Error as exc:
                raise OnlineStoreUnavailable(
                    f"Cannot open the online store {self.path}: {exc}"
                ) from exc
            self._local.con = con
        return con

    def write(self, view: str, records: Sequence[Record]) -> int:
        con = self._con()
        rows = [(view, encode_key(r.key), r.event_ts, r.created_ts, _dump(r)) for r in records]
        try:
            with con:
                before = con.total_changes
                # Only a newer record (event time, then created time) replaces the stored one.
                con.executemany(
                    "INSERT INTO online_features VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (view, key) DO UPDATE SET event_ts = excluded.event_ts, "
                    "created_ts = excluded.created_ts, record = excluded.record "
                    "WHERE (excluded.event_ts, coalesce(excluded.created_ts, 0)) > "
                    "(online_features.event_ts, coalesce(online_features.created_ts, 0))",
                    rows,
                )
                return con.total_changes - before
        except sqlite3.Error as exc:
            raise OnlineStoreUnavailable(f"Online store {self.path}: {exc}") from exc

    def read(self, view: str, keys: Sequence[Key]) -> list[Record | None]:
        if not keys:
            return []
        con = self._con()
        encoded = [encode_key(k) for k in keys]
        unique = list(dict.fromkeys(encoded))  # a micro-batch often asks for a key twice
        found: dict[str, str] = {}
        try:
            for start in range(0, len(unique), 500):  # SQLite's bound-variable limit
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, record in con.execute(
                    f"SELECT key, record FROM online_features WHERE view = ? AND key IN ({marks})",
                    [view, *chunk],
                ):
                    found[key] = record
        except sqlite3.Error as exc:
            raise OnlineStoreUnavailable(f"Online store {self.path}: {exc}") from exc
        return [
            _load(key, found[text]) if text in found else None
            for key, text in zip(keys, encoded, strict=True)
        ]

    def ping(self) -> None:
        try:
            self._con().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise OnlineStoreUnavailable(f"Online store {self.path}: {exc}") from exc

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


class RedisOnlineStore:
    """Redis: one string per view and key (``PREFIX:VIEW:KEY``), read in one MGET per batch."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.prefix = (query.pop("key_prefix", ["shipyard"]) or ["shipyard"])[0]
        self.url = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
        safe = parts._replace(netloc=parts.hostname or "", query="")
        port = f":{parts.port}" if parts.port else ""
        self.target = f"{urlunsplit(safe._replace(netloc=(parts.hostname or '') + port))}"
        self.target += f"#{self.prefix}"
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(
                self.url, socket_connect_timeout=2, socket_timeout=2
            )
        return self._client

    def _key(self, view: str, key: Key) -> str:
        return f"{self.prefix}:{view}:{encode_key(key)}"

    def _call(self, work: Any) -> Any:
        import redis

        try:
            return work(self._redis())
        except redis.RedisError as exc:
            raise OnlineStoreUnavailable(
                f"The online store {self.target} cannot be reached: {reason(exc)}. "
                "Check that Redis is running, or unset SHIPYARD_ONLINE_STORE to use the SQLite "
                "store."
            ) from exc

    def write(self, view: str, records: Sequence[Record]) -> int:
        if not records:
            return 0
        names = [self._key(view, r.key) for r in records]
        stored = self._call(lambda r: r.mget(names))
        newer = {
            name: _dump(record)
            for name, record, old in zip(names, records, stored, strict=True)
            if old is None or record.is_newer(_load(record.key, old))
        }
        if newer:
            self._call(lambda r: r.mset(newer))
        return len(newer)

    def read(self, view: str, keys: Sequence[Key]) -> list[Record | None]:
        if not keys:
            return []
        names = [self._key(view, k) for k in keys]
        unique = list(dict.fromkeys(names))  # a micro-batch often asks for a key twice
        stored = dict(zip(unique, self._call(lambda r: r.mget(unique)), strict=True))
        return [
            None if stored[name] is None else _load(key, stored[name])
            for key, name in zip(keys, names, strict=True)
        ]

    def ping(self) -> None:
        self._call(lambda r: r.ping())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def open_online_store(url: str | None, home: Path) -> OnlineStore:
    """The store ``url`` names (``redis://``, ``sqlite:///PATH``), or SQLite in ``home``."""
    if url is None or not url.strip():
        return SqliteOnlineStore(home / "online.db")
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisOnlineStore(url)
    if url.startswith("sqlite:///"):
        return SqliteOnlineStore(url.removeprefix("sqlite:///"))
    raise ConfigError(
        f"SHIPYARD_ONLINE_STORE {url!r} is not an online store: give redis://HOST:PORT/DB "
        "or sqlite:///PATH, or unset it for SQLite in the Shipyard home."
    )
