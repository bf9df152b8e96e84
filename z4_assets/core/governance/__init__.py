"""Governance: a model card built only from the evidence a factory run left behind."""
