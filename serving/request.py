"""What POST /predict accepts: one recording, as the multipart file field `audio` or as
the raw body (`Content-Type: audio/*` or `application/octet-stream`), with `top_k` and
`segmentation` in the query string or the form.

`PredictRequest` is the endpoint's BentoML input spec: its schema says `audio` is a file,
so BentoML's clients and Swagger send one, but it reads the body itself. BentoML's own
parsing would spool large uploads to temporary files, write file inputs to disk under the
client's file name and fetch URLs sent as text; here the body is read in memory with the
API's time limit, and every refusal becomes an `InputError` that the endpoint answers in
the one error shape.
"""

from __future__ import annotations

import time

import bentoml
from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationError
from pydantic_core import core_schema
from starlette.requests import Request

from ser.config import LABELS
from ser.errors import InputError
from ser.segments import Segmentation
from serving.middleware import read_body
from serving.multipart import parse_multipart
from serving.settings import SETTINGS

FIELD = "audio"
PARAMETERS = {"top_k", "segmentation"}  # besides the audio: query string or form fields
# raw bodies: what browsers, phones and scripts label audio with
RAW_TYPES = ("audio/", "video/webm", "video/mp4", "video/ogg", "application/ogg", "application/octet-stream")


class Recording:
    """The uploaded bytes, or why the request was refused before they could be analysed."""

    def __init__(self, data: bytes | bytearray = b"", refusal: InputError | None = None, read_s: float = 0.0) -> None:
        self._data, self.refusal, self.read_s = data, refusal, read_s  # read_s: reading and parsing the body

    def take(self) -> bytes | bytearray:
        """The bytes, handed over once: the request keeps no reference to the upload."""
        data, self._data = self._data, b""
        return data

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(value: object) -> Recording:
            if isinstance(value, Recording):
                return value
            if isinstance(value, (bytes, bytearray)):
                return cls(bytes(value))
            raise ValueError("audio must be the file's bytes")

        return core_schema.no_info_plain_validator_function(validate)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict:
        # "file" is what BentoML's clients read to send a multipart upload; OpenAPI (Swagger)
        # reads the serialization form, a binary string
        if handler.mode == "validation":
            return {"type": "file", "format": "audio", "description": "the recording"}
        return {"type": "string", "format": "binary", "description": "the recording"}


class PredictRequest(bentoml.IODescriptor):
    audio: Recording = Field(description="WAV, FLAC, AIFF, MP3, Ogg, WebM or MP4/M4A; any rate 8-192 kHz")
    top_k: int = Field(3, ge=1, le=len(LABELS), description="how many of the likeliest emotions to list")
    segmentation: Segmentation = Field("speech", description="recordings longer than 4 s: 'speech' splits them "
                                       "into utterances where the speech is, 'fixed' into 4 s windows every 2 s")  # fmt: skip

    @classmethod
    async def from_http_request(cls, request: Request, serde: object) -> PredictRequest:
        start = time.perf_counter()
        try:
            parsed = await parse_predict_request(request)
        except InputError as refusal:
            parsed = cls.model_construct(audio=Recording(refusal=refusal), top_k=3, segmentation="speech")
        parsed.audio.read_s = time.perf_counter() - start
        return parsed


PredictRequest.multipart_fields = [FIELD]  # a file field for BentoML's clients and docs


async def parse_predict_request(request: Request) -> PredictRequest:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: dict[str, str] = dict(request.query_params)
    if ctype == "multipart/form-data":
        body = await read_body(request.receive, SETTINGS.body_timeout_s)
        parts = parse_multipart(body, request.headers["content-type"])
        del body
        audio = [p for p in parts if p.name == FIELD]
        if not audio:
            got = ", ".join(sorted({repr(p.name) for p in parts})) or "none"
            raise InputError(
                "missing_file", f"no file field named '{FIELD}' in the form (fields sent: {got})"
            )
        if len(audio) > 1:
            raise InputError(
                "too_many_files", f"send exactly one file in the '{FIELD}' field, not {len(audio)}"
            )
        fields |= {p.name: p.data.decode("utf-8", "replace") for p in parts if p.name != FIELD}
        data = audio[0].data
        del parts, audio
    elif ctype.startswith(RAW_TYPES):
        data = await read_body(request.receive, SETTINGS.body_timeout_s)
    else:
        raise InputError("unsupported_media_type",
                         f"send the recording as multipart/form-data with a file field '{FIELD}', or as the raw "
                         f"body with Content-Type audio/* or application/octet-stream (got {ctype or 'none'})", 415)  # fmt: skip
    if not data:
        raise InputError("empty_file", "the uploaded file is empty")
    unknown = set(fields) - PARAMETERS
    if unknown:
        raise InputError(
            "bad_parameter", f"unknown parameter(s) {sorted(unknown)}; known: {sorted(PARAMETERS)}"
        )
    try:
        return PredictRequest(audio=Recording(data), **fields)
    except ValidationError as e:
        problem = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise InputError("bad_parameter", problem) from None
