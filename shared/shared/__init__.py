"""Conduit's shared package: contracts, settings, key layout, logging and database models."""
