"""What a request body costs in working memory while it arrives and is parsed (app/http/middleware/body_limit.py
charges it).

A request's work is charged separately, by its model's runtime (`Runtime.cost`, in each family under
app/families): the request's units (pixels, text tokens, series points) times a factor, plus a fixed part. All
factors are measured, not guessed: `python -m bench.cost_factors` runs one request of each size through the
service's own code path in a fresh process and reports its peak RSS growth; what it gave here (2 CPU cores,
onnxruntime 1.32, Pillow 12.3, the committed models and a real-shape DistilBERT) is next to each constant.
Estimates err high (the heaviest image mode of a class, tokens bounded from characters), so the sum over the
requests in flight bounds their real peak from above.
"""

from __future__ import annotations

MB = 2**20

# ---- request bodies (charged by app/http/middleware/body_limit.py as they arrive, until the request ends) ---------
# While received, a body is held about 3 times (the server's buffer, the chunks, then joined): 48 concurrent 4 MB
# bodies peaked at +610 MB. A complete JSON body is then parsed into Python objects: a 4 MB array of 2M zeros
# peaked at +32 MB alone.
BODY_FACTOR = 3.0
JSON_BODY_FACTOR = 8.0


def body_cost(received: int, content_type: bytes, complete: bool) -> int:
    json = complete and content_type.split(b";")[0].strip().lower().endswith(b"json")
    return int(received * (JSON_BODY_FACTOR if json else BODY_FACTOR))
