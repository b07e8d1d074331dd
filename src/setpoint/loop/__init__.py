"""The closed loop: policies, retraining, gates, rollouts."""
