"""Reliability suite: bad inputs, injected faults and a secret scan over real factory runs."""
