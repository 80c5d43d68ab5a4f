"""Helpers the tests share: servers, clients, real parts (PostgreSQL, Redis, nginx)."""
