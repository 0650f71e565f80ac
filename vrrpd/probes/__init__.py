"""Health probes: what they check (runners) and what their results do to priority (tracking)."""
