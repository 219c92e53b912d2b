"""Offers and coupons: codes, validity rules, assignment to profiles, validation and redemption in any channel."""
