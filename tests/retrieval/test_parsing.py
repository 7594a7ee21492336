"""Uploads and their text: each supported type parsed from a file made here (md, html, pdf written by hand,
docx through python-docx, txt), refusals naming the type, the size limit, atomic storage and orphan sweeping."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.retrieval.errors import FileNotFound, FileTooLarge, InvalidFile, UnsupportedFileType
from appliance.retrieval.files import FileStore
from appliance.retrieval.parse import parse
from appliance.retrieval.sniff import media_type
from appliance.state.store import StateStore
from tests.retrieval.corpus import documents, docx_bytes, pdf_bytes


def text_of(filename: str, data: bytes) -> str:
    return parse(data, media_type(filename, data))


def test_markdown_and_text_as_they_are() -> None:
    assert text_of("a.md", b"# Title\n\nSome  *text*.\r\n\n\n\nMore.") == "# Title\n\nSome *text*.\n\nMore."
    assert text_of("a.txt", "\ufeffcaf\u00e9 ok".encode()) == "caf\u00e9 ok"
    assert text_of("a.txt", "hello".encode("utf-16")) == "hello"


def test_html_blocks_headings_lists_tables_and_no_script() -> None:
    page = (b"<html><head><title>T</title><style>p{}</style></head><body><h2>Pump <b>P-1</b></h2>"
            b"<p>First&nbsp;line<br>second line</p><script>alert('x')</script><ul><li>one</li><li>two</li></ul>"
            b"<table><tr><td>a</td><td>b</td></tr></table><pre>  keep\n  this</pre>tail</body></html>")
    text = text_of("page.html", page)
    assert "## Pump P-1" in text and "First line\nsecond line" in text
    assert "- one\n\n- two" in text and "| a | b" in text and "alert" not in text and "p{}" not in text
    assert text.rstrip().endswith("tail") and "keep" in text and "T" not in text.split("\n")[0]


def test_pdf_pages_in_order() -> None:
    data = pdf_bytes([f"line {i} of the manual (page {i // 3 + 1})" for i in range(7)], per_page=3)
    text = text_of("m.pdf", data)
    assert [f"line {i} of the manual" in text for i in range(7)] == [True] * 7
    assert text.index("line 2") < text.index("line 3") < text.index("line 6")


def test_docx_headings_paragraphs_and_tables() -> None:
    data = docx_bytes("Manual", [("Press M-1", ["Torque is 42 N·m.", "Check weekly."])])
    text = text_of("m.docx", data)
    assert text.startswith("# Manual") and "## Press M-1" in text and "Torque is 42 N·m." in text
    assert "Shift | Hours" in text and "Early | 06-14" in text


def test_generated_documents_parse_with_every_fact() -> None:
    for doc in documents(with_docx=True):
        text = " ".join(text_of(doc.filename, doc.data).split())
        assert all(fact.sentence in text for fact in doc.facts), doc.filename


@pytest.mark.parametrize(("name", "data", "error", "words"), [
    ("photo.png", b"\x89PNG\r\n", UnsupportedFileType, "'.png' files are not supported"),
    ("tool.exe", b"MZ", UnsupportedFileType, "'.exe' files"),
    ("README", b"text", UnsupportedFileType, "without an extension"),
    ("fake.pdf", b"\x89PNG\r\n", InvalidFile, "not a PDF (it looks like a PNG image)"),
    ("fake.docx", b"%PDF-1.4", InvalidFile, "not a .docx"),
    ("latin1.txt", "caf\u00e9".encode("latin-1"), InvalidFile, "must be UTF-8"),
    ("bin.md", b"abc\x00def", InvalidFile, "NUL byte"),
])
def test_refusals_name_the_type(name: str, data: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")) as caught:
        media_type(name, data)
    assert caught.value.status == 400  # type: ignore[attr-defined]


def test_damaged_files_fail_parsing_clearly() -> None:
    with pytest.raises(InvalidFile, match="unreadable PDF"):
        parse(b"%PDF-1.4 garbage", "application/pdf")
    with pytest.raises(InvalidFile, match="hold no text"):
        parse(pdf_bytes([]), "application/pdf")


def test_file_store(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db").open()
    files = FileStore(store, tmp_path / "files", max_bytes=4096)
    made = files.create("../../etc/Notes.md", b"# hello", purpose="assistants")
    assert made.id.startswith("file-") and made.filename == "Notes.md" and made.bytes == 7
    assert (tmp_path / "files" / made.id).read_bytes() == b"# hello"
    assert oct((tmp_path / "files" / made.id).stat().st_mode & 0o777) == "0o600"
    assert files.get(made.id) == made and files.list_files() == [made]
    with pytest.raises(FileTooLarge) as big:
        files.create("big.txt", b"x" * 4097)
    assert big.value.status == 413
    with pytest.raises(Exception, match="purpose 'batch'"):
        files.create("a.txt", b"x", purpose="batch")
    (tmp_path / "files" / "file-orphan").write_bytes(b"x")
    (tmp_path / "files" / ".x.tmp").write_bytes(b"x")
    assert files.sweep_orphans() == 2 and files.content(made.id) == b"# hello"
    files.delete_row(made.id)
    with pytest.raises(FileNotFound):
        files.get(made.id)
    assert not (tmp_path / "files" / made.id).exists()
