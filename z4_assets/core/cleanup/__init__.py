"""Post-run cleanup and retention: scratch space, what is removed, what is kept and for how long."""
