"""The native REST API: schemas, dependencies, and one module of routes per resource."""
