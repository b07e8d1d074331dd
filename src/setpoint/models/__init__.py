"""Models: one predictor contract, the flavors that implement it, and the registry.

:mod:`setpoint.models.predictor` is the contract every flavor implements,
:mod:`setpoint.models.inputs` turns what callers pass to ``predict`` into what a
model takes, and :mod:`setpoint.models.flavors` wraps fitted objects of each library
(scikit-learn, LightGBM, XGBoost, anything with ``predict``) and loads them back.
"""
