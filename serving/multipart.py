"""Parse a multipart/form-data body held in memory, with python-multipart's own form parser.

Starlette's form parser spools large uploads to temporary files, and BentoML's `Path`
inputs write them to disk under the client's file name; here every part stays in memory
(python-multipart's in-memory limit is raised to the body's size, so nothing spills to
disk), and the upload is gone when the request ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from python_multipart import FormParser
from python_multipart.multipart import Field, File, parse_options_header

from ser.errors import InputError

MAX_PARTS = 8  # a predict request has one part; anything beyond a few is abuse


@dataclass
class Part:
    name: str
    filename: str | None
    data: bytes | bytearray


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """Split `body` into parts; InputError (400) when the body isn't valid multipart."""
    ctype, options = parse_options_header(content_type)
    if ctype != b"multipart/form-data":
        raise InputError("unsupported_media_type",
                         "send the audio as multipart/form-data with a file field named 'audio'", 415)  # fmt: skip
    boundary = options.get(b"boundary")
    if not boundary:
        raise InputError("bad_multipart", "the multipart body has no boundary")
    parts: list[Part] = []

    def add(part: Part) -> None:
        if len(parts) >= MAX_PARTS:
            raise InputError("too_many_parts", f"the form has more than {MAX_PARTS} parts")
        parts.append(part)

    def on_field(field: Field) -> None:
        add(Part(field.field_name.decode("utf-8", "replace"), None, field.value or b""))

    def on_file(file: File) -> None:
        name = file.field_name.decode("utf-8", "replace") if file.field_name else ""
        filename = file.file_name.decode("utf-8", "replace") if file.file_name else None
        add(Part(name, filename, file.file_object.getbuffer().tobytes()))
        file.close()

    config = {"MAX_MEMORY_FILE_SIZE": len(body) + 1, "MAX_BODY_SIZE": len(body)}  # never on disk
    try:  # the constructor refuses some boundaries (over 256 characters) too
        parser = FormParser("multipart/form-data", on_field, on_file, boundary=boundary, config=config)
        parser.write(body)
        parser.finalize()
    except InputError:
        raise
    except Exception as e:  # python-multipart raises several types for malformed bodies
        raise InputError("bad_multipart", f"the multipart body is malformed ({e})") from e
    return parts
