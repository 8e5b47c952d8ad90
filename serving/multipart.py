"""Parse a multipart/form-data body held in memory.

Starlette's form parser spools large uploads to temporary files, and BentoML's `Path`
inputs write them to disk under the client's file name; this parser keeps every part in
memory, so an upload never touches the disk and is gone when the request ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

from ser.errors import InputError

MAX_PARTS = 8  # a predict request has one part; anything beyond a few is abuse


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str
    data: bytearray = field(default_factory=bytearray)


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """Split `body` into parts; InputError(400) when the body isn't valid multipart."""
    ctype, options = parse_options_header(content_type)
    if ctype != b"multipart/form-data":
        raise InputError("unsupported_media_type",
                       "send the audio as multipart/form-data with a file field named 'audio'", 415)  # fmt: skip
    boundary = options.get(b"boundary")
    if not boundary:
        raise InputError("bad_multipart", "the multipart body has no boundary")
    parts: list[Part] = []
    headers: dict[bytes, bytes] = {}
    header_field = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        if len(parts) >= MAX_PARTS:
            raise InputError("too_many_parts", f"the form has more than {MAX_PARTS} parts")
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        filename = disposition.get(b"filename")
        ctype = headers.get(b"content-type", b"application/octet-stream").decode("latin-1")
        parts.append(Part(name, filename.decode("utf-8", "replace") if filename is not None else None, ctype))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data.extend(data[start:end])

    try:  # the parser's constructor refuses some boundaries (over 256 characters) too
        parser = MultipartParser(boundary, {
            "on_part_begin": on_part_begin, "on_header_field": on_header_field,
            "on_header_value": on_header_value, "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        })  # fmt: skip
        parser.write(body)
        parser.finalize()
    except InputError:
        raise
    except Exception as e:  # python-multipart raises several types for malformed bodies
        raise InputError("bad_multipart", f"the multipart body is malformed ({e})") from e
    return parts
