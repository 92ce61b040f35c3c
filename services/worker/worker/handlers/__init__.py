"""Job handlers shipped with Conduit."""
