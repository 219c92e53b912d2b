"""Collect: Segment-spec ingestion, validation, channel taxonomy, the durable journal and file importers."""
