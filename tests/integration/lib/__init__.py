"""Helpers for Gatehouse's integration tests: a real origin server, a raw
HTTP/1.1 client, the gatehouse process and its configuration. Stdlib only."""
