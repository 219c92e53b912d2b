"""Consent: purposes and subscriptions per channel, double opt-in, unsubscribe, reachability."""
