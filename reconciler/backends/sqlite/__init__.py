"""The embedded installation under --home: SQLite state, the local secret store, the lock."""
