"""The base of every stored document: a frozen, validated value with its id.

Apart from `commerce.domain.models` so that a feature storing one kind of document
(the rate-limit counters of checkout, the download link and the license API) does
not build every other document's model when it loads: pydantic builds a model's
validator when its class is defined, 0.5-1.7 ms of CPU each at a cold start
(docs/performance.md, "Cold start").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
