"""Profiles: the read model of a person: identifiers, current traits, channels, and one timeline."""
