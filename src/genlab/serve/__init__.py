"""Serving trained models: MLflow pyfunc models over genlab checkpoints, and `genlab serve`.

* :mod:`genlab.serve.generator`: one trained GAN/VAE behind validated ``sample`` and
  ``traverse`` calls that return uint8 images (shared by the web app and the pyfunc model).
* :mod:`genlab.serve.pyfunc`: MLflow "models from code" pyfunc models whose only artifact is a
  genlab checkpoint, loaded with ``torch.load(weights_only=True)``: no pickle on load.
* :mod:`genlab.serve.app`: the FastAPI web page and JSON API of ``genlab serve``.
"""
