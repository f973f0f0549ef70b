"""The common multipart upload, one file part named `file`, read straight from the body bytes.

Starlette's form parser (python-multipart, a temporary file per part, callbacks per header) costs ~150 us for a
300-byte PNG, more than the digit model. `single_file` takes only the exact shape every client sends for one
upload: the opening delimiter, one part whose headers are Content-Disposition (form-data, name "file", a plain
filename) and optionally Content-Type, then the closing delimiter. Anything else returns None and goes through the
full parser, which also gives every malformed body its error, so no input reaches a different answer here.
"""

from __future__ import annotations

from python_multipart.multipart import parse_options_header

_DISPOSITION = b'form-data; name="file"; filename="'
_MAX_HEADERS = 1024  # a part's headers longer than this are not the common shape


def _part_type(headers: bytes) -> str | None:
    """The part's Content-Type ("" when absent), or None when its headers are not the common shape."""
    content_type = ""
    disposition = False
    for line in headers.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if not sep:
            return None
        if name == b"content-disposition" and not disposition:
            filename = value[len(_DISPOSITION) :]
            if not value.startswith(_DISPOSITION) or filename.count(b'"') != 1 or not filename.endswith(b'"'):
                return None
            if b"\\" in filename or b";" in filename:
                return None
            disposition = True
        elif name == b"content-type" and not content_type:
            content_type = value.decode("latin-1")
        else:
            return None
    return content_type if disposition else None


def single_file(content_type: str, body: bytes) -> tuple[str, bytes] | None:
    """(the part's Content-Type, the file's bytes) when `body` is one file part named `file`, else None."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        return None
    opening, closing = b"--" + boundary + b"\r\n", b"\r\n--" + boundary + b"--"
    if not body.startswith(opening) or not (body.endswith(closing) or body.endswith(closing + b"\r\n")):
        return None
    end_of_headers = body.find(b"\r\n\r\n", len(opening), len(opening) + _MAX_HEADERS)
    if end_of_headers < 0:
        return None
    part_type = _part_type(body[len(opening) : end_of_headers])
    end = body.rindex(closing)
    data = body[end_of_headers + 4 : end]
    if part_type is None or b"\r\n--" + boundary in data:  # a second part: the full parser decides
        return None
    return part_type, data
