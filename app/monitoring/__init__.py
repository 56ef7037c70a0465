"""Monitoring the served model in use: figures over confirmed cases, input drift, per-request
typicality, the refer decision, and their Prometheus gauges.

Imports only `model`, NumPy, prometheus_client and the standard library, so that the API layers
can wire it in without a cycle.
"""
