"""Which files retrieval takes: by extension, then checked against the content (a `.pdf` must start like a PDF,
a `.docx` must be a zip holding `word/document.xml`, text must decode). Anything else is a 400 naming the type."""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePath

from appliance.retrieval.errors import InvalidFile, UnsupportedFileType

MEDIA_TYPES = {
    ".txt": "text/plain", ".text": "text/plain", ".md": "text/markdown", ".markdown": "text/markdown",
    ".html": "text/html", ".htm": "text/html", ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
TEXT_TYPES = ("text/plain", "text/markdown", "text/html")
SUPPORTED = ", ".join(sorted(MEDIA_TYPES))
OTHER_TYPES = {  # what a refused file looks like, to name it in the error
    b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image", b"\x7fELF": "an executable",
    b"\x1f\x8b": "a gzip archive", b"Rar!": "a RAR archive", b"7z\xbc\xaf": "a 7-Zip archive",
    b"\xd0\xcf\x11\xe0": "an old Office (OLE) document",
}


def decode_text(data: bytes) -> str:
    """UTF-8 (a BOM allowed) or UTF-16 with a BOM; raises InvalidFile otherwise (binary or another encoding)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InvalidFile(f"not valid UTF-16 text: {exc.reason} at byte {exc.start}") from exc
    if b"\x00" in data[:8192]:
        raise InvalidFile("binary content in a text file (a NUL byte)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidFile(f"text files must be UTF-8: invalid byte at offset {exc.start}") from exc


def _what_else(data: bytes) -> str:
    for magic, name in OTHER_TYPES.items():
        if data.startswith(magic):
            return name
    if data.startswith(b"PK\x03\x04"):
        return "a zip archive"
    return "something else"


def media_type(filename: str, data: bytes) -> str:
    """The file's media type, checked against its content.

    Raises:
        UnsupportedFileType: the extension is not one of MEDIA_TYPES (the message names it and the supported ones).
        InvalidFile: the content is not what the extension says (names what it looks like).
    """
    suffix = PurePath(filename).suffix.lower()
    kind = MEDIA_TYPES.get(suffix)
    if kind is None:
        shown = f"{suffix!r} files" if suffix else "files without an extension"
        raise UnsupportedFileType(f"{filename}: {shown} are not supported for retrieval; supported: {SUPPORTED}",
                                  param="file")
    if kind == "application/pdf":
        if not data.lstrip()[:1024].startswith(b"%PDF-"):
            raise InvalidFile(f"{filename}: not a PDF (it looks like {_what_else(data)})", param="file")
    elif suffix == ".docx":
        _check_docx(filename, data)
    else:
        try:
            decode_text(data)
        except InvalidFile as exc:
            raise InvalidFile(f"{filename}: {exc.message}", param="file") from exc
    return kind


def _check_docx(filename: str, data: bytes) -> None:
    if not data.startswith(b"PK\x03\x04"):
        raise InvalidFile(f"{filename}: not a .docx (it looks like {_what_else(data)})", param="file")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile as exc:
        raise InvalidFile(f"{filename}: a damaged .docx ({exc})", param="file") from exc
    if "word/document.xml" not in names:
        raise InvalidFile(f"{filename}: a zip archive but not a Word document (no word/document.xml)", param="file")
