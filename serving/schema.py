"""The typed answer of POST /predict: what BentoML's clients receive and /docs shows."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Ranked(BaseModel):
    emotion: str
    probability: float


class Segment(BaseModel):
    start: float = Field(description="seconds from the start of the recording")
    end: float
    emotion: str
    confidence: float
    probabilities: dict[str, float]


class ModelRef(BaseModel):
    name: str
    version: str


class Prediction(BaseModel):
    emotion: str = Field(description="the likeliest emotion over the whole recording")
    confidence: float = Field(description="its calibrated probability")
    uncertain: bool = Field(description="confidence below the threshold chosen on validation speakers: "
                            "read `top_k`, not only `emotion`")  # fmt: skip
    top_k: list[Ranked] = Field(description="the likeliest emotions, most likely first")
    probabilities: dict[str, float] = Field(description="every emotion's calibrated probability")
    duration_s: float
    # a one-window clip has no `agreement` or `segments`: left out of the answer, not null
    agreement: float | None = Field(None, exclude_if=lambda v: v is None, description="share of 4 s windows whose answer is `emotion` "
                                    "(recordings longer than one window)")  # fmt: skip
    segments: list[Segment] | None = Field(None, exclude_if=lambda v: v is None, description="one per 4 s window, every 2 s")
    model: ModelRef

