"""The Open Inference Protocol (KServe V2, the REST API of Triton, MLServer and KServe), framework-free: its
messages (schemas.py), tensors in and out of JSON and the binary-data extension (tensors.py), and one adapter per
kind of runtime from tensors to the family's own request and from its typed outputs back to tensors (adapters.py).
app/http/api/v2.py is the thin HTTP layer over them."""
