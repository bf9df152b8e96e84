"""Privacy facts of a snapshot: what personal data it holds, on which basis, and what the model sees."""

from __future__ import annotations

import pandas as pd

from z4_assets.core.contract import Contract


def privacy_report(df: pd.DataFrame, contract: Contract) -> dict:
    """Sensitive attributes with their legal basis and use, identifiers, and re-identification risk."""
    sensitive = {
        col: {"legal_basis": spec.legal_basis, "basis_reference": spec.basis_reference,
              "consent_reference": spec.consent_reference, "use_as_feature": spec.use_as_feature,
              "in_model_features": col in contract.model_features, "distinct_values": int(df[col].nunique())}
        for col, spec in contract.sensitive.items()
    }
    quasi = list(contract.sensitive)
    uniques = 0.0
    k_min = None
    if quasi:
        sizes = df.groupby(quasi, dropna=False).size()
        uniques = float((sizes == 1).sum()) / max(len(df), 1)
        k_min = int(sizes.min())
    return {
        "rows": int(len(df)),
        "direct_identifiers": contract.direct_identifiers,
        "identifiers_pseudonymised": "keyed HMAC-SHA256 by the access broker before this stage",
        "identifiers_in_model_features": [c for c in contract.direct_identifiers if c in contract.model_features],
        "sensitive_attributes": sensitive,
        "quasi_identifiers": quasi,
        "k_anonymity_min_group": k_min,
        "share_unique_on_quasi_identifiers": round(uniques, 6),
        "minimisation": {"model_features": len(contract.model_features),
                         "declared_columns": len(contract.columns),
                         "excluded_from_model": sorted(set(contract.columns) - set(contract.model_features))},
    }
