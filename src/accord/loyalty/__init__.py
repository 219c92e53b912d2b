"""Loyalty: the append-only points ledger, balances and tiers, earn rules, rewards, expiry."""
