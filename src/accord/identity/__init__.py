"""Identity graph: normalisation, rules, deterministic resolution, merges, unmerge, conflicts."""
