"""The model factory's assets, in stage-table order: data, model, evaluation, release."""

from z4_assets.assets.data import hygiene_report, z3_snapshot
from z4_assets.assets.evaluation import adversarial_eval, fairness_report
from z4_assets.assets.model import trained_model
from z4_assets.assets.release import cleanup_report, model_card, promotion, run_record, signed_package

FACTORY_ASSETS = [z3_snapshot, hygiene_report, trained_model, adversarial_eval, fairness_report, model_card,
                  signed_package, run_record, promotion, cleanup_report]

__all__ = ["FACTORY_ASSETS", *(a.key.to_user_string() for a in FACTORY_ASSETS)]
