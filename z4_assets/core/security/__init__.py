"""The security stage: poisoning screen, evasion robustness, membership inference, output integrity.

Plain Python (no Dagster); ART, torch, sklearn and matplotlib are imported inside the functions.
"""
