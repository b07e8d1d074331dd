"""Batch scoring: files of rows through a registered model's predictor (``score.py``)."""
