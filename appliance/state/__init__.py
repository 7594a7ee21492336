"""The SQLite state store."""

from appliance.state.store import StateStore, StoreError

__all__ = ["StateStore", "StoreError"]
