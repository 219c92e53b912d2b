"""Segments and computed traits: rules compiled to SQL per dialect, evaluated in batch and incrementally."""
