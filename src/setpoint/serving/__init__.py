"""The serving layer: deployments, the HTTP server and the prediction log."""
