"""app/http/multipart.py: the fast path takes only the common one-file upload, and reads it exactly as Starlette's full
multipart parser does; every other body is left to that parser (None)."""

from __future__ import annotations

import asyncio

import pytest
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartParser

from app.http.multipart import single_file

B = "b0undary7"
TYPE = f"multipart/form-data; boundary={B}"
PNG = b"\x89PNG\r\n\x1a\n...\r\n--not-the-boundary\r\n"  # bytes that look like delimiters, but are not


def part(headers: str, data: bytes) -> bytes:
    return f"--{B}\r\n{headers}\r\n\r\n".encode() + data + b"\r\n"


def body(*parts: bytes, end: bytes = f"--{B}--\r\n".encode()) -> bytes:
    return b"".join(parts) + end


FILE = 'Content-Disposition: form-data; name="file"; filename="7.png"'
COMMON = {
    "with content type": body(part(FILE + "\r\nContent-Type: image/png", PNG)),
    "without content type": body(part(FILE, PNG)),
    "no final CRLF": body(part(FILE, PNG), end=f"--{B}--".encode()),
    "empty file": body(part(FILE + "\r\nContent-Type: image/png", b"")),
    "lower-case header names": body(part(FILE.lower().replace("7.png", "7.PNG") + "\r\ncontent-type: image/png", PNG)),
}
OTHERS = {
    "two parts": body(part(FILE, PNG), part('Content-Disposition: form-data; name="x"', b"1")),
    "another name": body(part('Content-Disposition: form-data; name="image"; filename="7.png"', PNG)),
    "a text field": body(part('Content-Disposition: form-data; name="file"', b"7")),
    "a preamble": b"preamble\r\n" + body(part(FILE, PNG)),
    "an epilogue": body(part(FILE, PNG)) + b"epilogue",
    "an escaped filename": body(part('Content-Disposition: form-data; name="file"; filename="a\\"b.png"', PNG)),
    "an extended filename": body(part(FILE + "; filename*=UTF-8''7.png", PNG)),
    "an extra header": body(part(FILE + "\r\nContent-Transfer-Encoding: binary", PNG)),
    "no closing delimiter": part(FILE, PNG),
    "another boundary": body(part(FILE, PNG)).replace(B.encode(), b"other"),
    "headers never end": f"--{B}\r\n{FILE}\r\n".encode() + b"x" * 5000,
}


def parse_with_starlette(content_type: str, data: bytes) -> tuple[str, bytes]:
    async def run() -> tuple[str, bytes]:
        async def stream():
            yield data

        form = await MultiPartParser(Headers({"content-type": content_type}), stream()).parse()
        upload = form["file"]
        assert isinstance(upload, UploadFile)
        return upload.content_type or "", await upload.read()

    return asyncio.run(run())


@pytest.mark.parametrize("name", COMMON)
def test_the_common_upload_reads_as_starlette_reads_it(name: str) -> None:
    fast = single_file(TYPE, COMMON[name])
    assert fast is not None
    assert fast == parse_with_starlette(TYPE, COMMON[name])


@pytest.mark.parametrize("name", OTHERS)
def test_every_other_body_goes_to_the_full_parser(name: str) -> None:
    assert single_file(TYPE, OTHERS[name]) is None


def test_a_content_type_without_boundary_goes_to_the_full_parser() -> None:
    assert single_file("multipart/form-data", COMMON["with content type"]) is None
