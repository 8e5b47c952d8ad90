"""The in-memory multipart parser: malformed forms are a 400 in the API's shape, never a 500."""

from __future__ import annotations

import pytest

from ser.errors import InputError
from serving.multipart import parse_multipart


def form(boundary: str, payload: bytes = b"RIFF") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip


def test_one_part_in_memory():
    parts = parse_multipart(form("xyz"), "multipart/form-data; boundary=xyz")
    assert [(p.name, p.filename, bytes(p.data)) for p in parts] == [("audio", "a.wav", b"RIFF")]


def test_boundary_over_256_characters_is_a_400():
    boundary = "b" * 300
    with pytest.raises(InputError) as e:
        parse_multipart(form(boundary), f"multipart/form-data; boundary={boundary}")
    assert e.value.status == 400 and e.value.code == "bad_multipart"
