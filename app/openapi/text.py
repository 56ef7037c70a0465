"""The API's title and description, as the OpenAPI document and the docs pages show them."""

from typing import Final

TITLE: Final = "Malignancy predictor"
DESCRIPTION: Final = """\
Predicts whether a breast tumour is malignant from the nine cytology scores (integers 1 to 10)
of a fine-needle aspirate, with a 9-15-1 neural network trained on the Wisconsin Breast Cancer
(Original) data set.

**Intended use: research and teaching only.** The model was trained on a 1992 data set from one
hospital. It is not a medical device and must not be used to diagnose anyone.

* Requests are strict: unknown fields, missing fields, scores outside 1..10 and non-integers
  are rejected.
* A JSON body must not repeat a key (422 `duplicate_key`), a query string must not hold a
  parameter the route does not take or one given twice, and a body must not be compressed
  (415 for any `Content-Encoding` but `identity`).
* Every error answer outside `/v2` is `{"message": ..., "detail": [{"loc", "msg", "type"}]}`;
  `message` names the first five problems (field and rule), then "and N more"; `detail` lists
  up to 100.
* When the service has an API key (setting `API_KEY`), `/predict`, `/predict/batch`,
  `/explain`, `/metrics` and the V2 infer routes need it in the `X-API-Key` header; `/health`,
  the probes, `/model`, V2 health and metadata, and the docs stay open.
* `/v2` speaks the Open Inference Protocol (KServe's and Triton's V2 REST API, with Triton's
  binary tensor extension); its errors are `{"error": ...}`, as that protocol defines them.
* Every answer carries an `X-Request-ID` header: the client's, when it sent a sane one (1 to
  128 characters of letters, digits and `._:/+=@-`), else a new one.
"""
