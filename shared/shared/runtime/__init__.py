"""Runtime settings: the catalog of keys, their PostgreSQL store, the listener applying them."""
