"""HTTP API face: Segment-compatible collection and the admin API."""
