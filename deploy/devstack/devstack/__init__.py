"""devstack: Redis, PostgreSQL and the four services on one machine, for `make run` and tests."""
