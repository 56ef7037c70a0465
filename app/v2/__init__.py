"""The Open Inference Protocol (V2): tensor decoding and encoding, protocol-neutral of HTTP.

`codec.decode_request` turns an infer request's bytes (JSON, or JSON followed by binary tensors)
into a validated score matrix; `codec.decode_header` and `PendingRequest.feed` do the same for a
body read chunk by chunk, never held whole. `codec.encode_response` turns `ServedModel.score`'s
answer into the response's bytes. The routes are in app/v2/routes.py.
"""

from app.v2.routes import PREFIX, add_infer_routes, add_routes, body_limits

__all__ = ["PREFIX", "add_infer_routes", "add_routes", "body_limits"]
