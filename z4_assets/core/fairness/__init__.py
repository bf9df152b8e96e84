"""Fairness per protected group: fast vectorised metrics, bootstrap CIs and disparity gates."""
