"""The typed answer of POST /predict: what BentoML's clients receive and /docs shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Ranked(BaseModel):
    emotion: str
    probability: float


def _omit_none(description: str) -> Any:
    """An optional field left out of the answer when absent, not sent as null."""
    return Field(None, exclude_if=lambda v: v is None, description=description)


class Window(BaseModel):
    start: float = Field(description="seconds from the start of the recording")
    end: float
    emotion: str
    confidence: float
    probabilities: dict[str, float]


class Segment(BaseModel):
    start: float = Field(description="seconds from the start of the recording")
    end: float
    speech: bool | None = _omit_none("segmentation 'speech': an utterance (true) or silence (false)")
    emotion: str | None = _omit_none("the segment's likeliest emotion (absent for silence)")
    confidence: float | None = _omit_none("its calibrated probability")
    probabilities: dict[str, float] | None = _omit_none("every emotion's probability")
    windows: list[Window] | None = _omit_none("an utterance longer than 4 s: its 4 s windows")


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
    segmentation: str = Field(description="'whole' (one 4 s window), 'speech' (utterances found by voice "
                              "activity detection; silence not classified) or 'fixed' (4 s windows every 2 s)")  # fmt: skip
    # a one-window clip has no `agreement` or `segments`: left out of the answer, not null
    speech_s: float | None = _omit_none("seconds of speech found (segmentation 'speech')")
    agreement: float | None = _omit_none("share of the speech (or of the 4 s windows) whose own answer is "
                                         "`emotion` (recordings longer than one window)")  # fmt: skip
    segments: list[Segment] | None = _omit_none("utterances and silences in time order, or the fixed windows")
    model: ModelRef
