"""Messaging: templates and localisation, delivery policy, channel adapters, outbox, feedback, broadcasts."""
