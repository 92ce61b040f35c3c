"""The health service: probes Redis, PostgreSQL and every service, answers one 200/503 document."""
