"""The code of every genlab MLflow model ("models from code"): MLflow copies this file into the
model and runs it on load instead of unpickling an object. The weights come from the model's
``checkpoint`` artifact, read by :meth:`GenlabModel.load_context` with weights_only=True."""

from mlflow.models import set_model

from genlab.serve.pyfunc import GenlabModel

set_model(GenlabModel())
