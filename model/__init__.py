"""NumPy model of tumour malignancy: data, scaler, network, metrics and the artifact file.

Imports nothing but NumPy and the standard library, so the service can load it without the
training extras.
"""
