"""Command-line face: `accord ...`."""
