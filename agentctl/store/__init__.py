"""Durable state behind one `Store` class; see `store/sql.py`."""

from agentctl.store.sql import Registry, Store, StoreError, now_us, open_store

__all__ = ["Registry", "Store", "StoreError", "now_us", "open_store"]
