"""Analytics: attribution, channel scorecard, lift, CLV, RFM and cohorts over the event store and files."""
