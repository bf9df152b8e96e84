"""Reliability suite: bad-input corpus, fault injection and secret scan."""
