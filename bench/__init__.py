"""Benchmarks against keepalived: failover outage and resource use (they print, never assert)."""
