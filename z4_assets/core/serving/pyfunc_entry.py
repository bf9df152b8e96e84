"""The pyfunc's code ("models from code": MLflow copies this file into the model, nothing is pickled)."""

import mlflow.models

from z4_assets.core.serving import Z4PackageModel

mlflow.models.set_model(Z4PackageModel())
