"""When each API key was last used (`api_keys.last_used_at`, shown on the Keys screen and by `keys list`).

A key is checked on every request, and a SQLite write per request would cost more than the request itself;
the column only has to say roughly when. So a key's use is written at most once per `INTERVAL_S`, judged from
the row just read and from the last attempt kept in memory (per store: one daemon, one store). A write that
fails (disk full, locked database) is logged and dropped: recording a use never fails the request, and the
next attempt waits for the interval like any other.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from typing import Final

from appliance.state.store import StateStore

log = logging.getLogger(__name__)
INTERVAL_S: Final = 60.0


class LastUse:
    """The throttle of one store's `last_used_at` writes."""

    def __init__(self, store: StateStore, interval_s: float = INTERVAL_S) -> None:
        self.store = store
        self.interval_s = interval_s
        self._attempted: dict[str, float] = {}  # key id -> wall time of the last write tried
        self._lock = threading.Lock()

    def due(self, key_id: str, stored: float | None, now: float) -> bool:
        """Whether a use at `now` is worth a write, given the row's `stored` value; claims the slot if so."""
        with self._lock:
            last = max(stored or 0.0, self._attempted.get(key_id, 0.0))
            if now - last < self.interval_s:
                return False
            self._attempted[key_id] = now
            return True

    def record(self, key_id: str, key_name: str, now: float) -> bool:
        """Write `now` as the key's last use; False (logged) when the store refused the write."""
        try:
            with self.store.transaction() as conn:
                conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ? AND "
                             "(last_used_at IS NULL OR last_used_at < ?)", (now, key_id, now))
        except (sqlite3.Error, OSError) as exc:
            log.warning("key use not recorded", extra={"key": key_name, "error": str(exc)})
            return False
        return True


# One throttle per store, kept as long as the store is: the request guard hands `verify_token` only the store.
_BY_STORE: weakref.WeakKeyDictionary[StateStore, LastUse] = weakref.WeakKeyDictionary()
_BY_STORE_LOCK = threading.Lock()


def last_use_of(store: StateStore) -> LastUse:
    with _BY_STORE_LOCK:
        found = _BY_STORE.get(store)
        if found is None:
            found = _BY_STORE[store] = LastUse(store)
        return found


def touch(store: StateStore, key_id: str, key_name: str, stored: float | None, now: float) -> float | None:
    """Record a use of the key at `now` if due; the `last_used_at` the caller may now show."""
    uses = last_use_of(store)
    if not uses.due(key_id, stored, now):
        return stored
    return now if uses.record(key_id, key_name, now) else stored
