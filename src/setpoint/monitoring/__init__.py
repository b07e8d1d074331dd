"""Monitoring: is production traffic still like the data the model was trained on."""
