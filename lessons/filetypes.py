"""What an uploaded file is, judged by its bytes, and the words it holds.

A file's name and the type a browser declares are the uploader's to choose, so neither
decides anything here: the content is sniffed (PNG, JPEG, PDF, the Office Open XML
packages by their inner parts, UTF-8 text), and the name's extension must then agree
with what was found. Anything else is refused with a message saying why. Text is
extracted for search within bounds, and a document whose text cannot be read is kept
without text rather than refused: it is still a file the staff wanted to keep.

Nothing here touches the database or the disk; ``services/files.py`` does.
"""

from __future__ import annotations

import html
import io
import re
import time
import unicodedata
import zipfile
from dataclasses import dataclass

from lessons.rules import FILE_NAME_MAX, FILE_TEXT_MAX

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class FileType:
    key: str  # png, jpeg, pdf, docx, pptx, xlsx, txt
    media_type: str  # what downloads are served as (never text/html)
    extensions: tuple[str, ...]  # the names that may declare it
    label: str  # how the lesson page names it
    described: str  # how a sentence names it


TYPES = {t.key: t for t in (
    FileType("png", "image/png", ("png",), "PNG image", "a PNG image"),
    FileType("jpeg", "image/jpeg", ("jpg", "jpeg"), "JPEG photo", "a JPEG photo"),
    FileType("pdf", "application/pdf", ("pdf",), "PDF", "a PDF"),
    FileType("docx", DOCX, ("docx",), "Word document", "a Word document"),
    FileType("pptx", PPTX, ("pptx",), "PowerPoint slides", "a PowerPoint presentation"),
    FileType("xlsx", XLSX, ("xlsx",), "Excel workbook", "an Excel workbook"),
    FileType("txt", "text/plain; charset=utf-8", ("txt",), "Text", "plain text"),
)}
BY_MEDIA_TYPE = {t.media_type: t for t in TYPES.values()}
ACCEPTED_EXTENSIONS = tuple(ext for t in TYPES.values() for ext in t.extensions)
ACCEPTED_LABEL = "slides (.pptx), photos (.png, .jpg), PDFs (.pdf) and documents " \
                 "(.docx, .xlsx, .txt)"

# An Office package is a ZIP: what it says it unpacks to is bounded (a small file can
# claim gigabytes), and so is what is read of it for its text.
ZIP_UNPACKED_MAX = 300 * 2**20
ZIP_MEMBERS_MAX = 10_000
XML_PART_MAX = 50 * 2**20
PDF_PAGES_READ = 2_000
# Seconds a PDF's text may take to read (some PDFs are slow page by page): past it the
# pages read so far are indexed, so an upload never outlasts the request timeout.
PDF_SECONDS = 10.0

# Inner parts that make a ZIP one of the Office formats: the package's content types and
# the folder of the application whose document it is.
_OOXML_FOLDERS = {"docx": "word/", "pptx": "ppt/", "xlsx": "xl/"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_NAME_UNSAFE = re.compile(r"[\x00-\x1f\x7f<>:\"|?*]")


class Refused(Exception):
    """The file is not one Muster keeps; ``message`` says why, for the uploader."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def clean_name(filename: str) -> str:
    """The uploader's file name made safe to store and show: the last path part only, no
    control or reserved characters, no leading dots, at most ``FILE_NAME_MAX`` characters
    with the extension kept. Raises ``Refused`` when nothing is left."""
    name = unicodedata.normalize("NFC", filename or "")
    name = re.split(r"[\\/]", name)[-1]
    name = _NAME_UNSAFE.sub("", name)
    name = " ".join(name.split()).strip(" .")
    if not name:
        raise Refused("The file has no usable name; rename it (e.g. report.pdf) and "
                      "upload it again.")
    if len(name) > FILE_NAME_MAX:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[:FILE_NAME_MAX - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            name = name[:FILE_NAME_MAX]
    return name


def extension(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def sniff(data: bytes) -> str | None:
    """The type ``data`` is by its content, or ``None`` for anything Muster does not keep."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return _office_kind(data)
    if _is_text(data):
        return "txt"
    return None


def _office_kind(data: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            infos = package.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return None
    if len(infos) > ZIP_MEMBERS_MAX or sum(i.file_size for i in infos) > ZIP_UNPACKED_MAX:
        return None
    names = {info.filename for info in infos}
    if "[Content_Types].xml" not in names:
        return None
    found = [kind for kind, folder in _OOXML_FOLDERS.items()
             if any(name.startswith(folder) for name in names)]
    return found[0] if len(found) == 1 else None


def _is_text(data: bytes) -> bool:
    """UTF-8 text (a BOM allowed) without NULs or other control characters than tabs,
    line ends and form feeds: an executable or an image is never this."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return not _CONTROL.search(text)


def identify(name: str, data: bytes) -> FileType:
    """The type of the upload ``name`` holding ``data``; ``Refused`` unless its content is
    one Muster keeps and its name's extension says the same."""
    ext = extension(name)
    if ext not in ACCEPTED_EXTENSIONS:
        raise Refused(f"“{name}” is not a kind of file Muster keeps. Upload "
                      f"{ACCEPTED_LABEL}.")
    if not data:
        raise Refused(f"“{name}” is empty.")
    kind = sniff(data)
    if kind is None:
        raise Refused(f"“{name}” is not {_declared(ext)}: its content is none of the kinds "
                      f"Muster keeps ({ACCEPTED_LABEL}). Nothing was stored.")
    found = TYPES[kind]
    if ext not in found.extensions:
        raise Refused(f"“{name}” is named as {_declared(ext)} but its content is "
                      f"{found.described}. Rename it to .{found.extensions[0]} if that is "
                      f"what it is. Nothing was stored.")
    return found


def _declared(ext: str) -> str:
    return next(t.described for t in TYPES.values() if ext in t.extensions)


# --- text for search ------------------------------------------------------------------------
def extract_text(kind: str, data: bytes, limit: int = FILE_TEXT_MAX) -> str:
    """The words of a document (at most ``limit`` characters), for search; "" for images
    and for any document whose text cannot be read (a scan, a damaged file)."""
    reader = _READERS.get(kind)
    if reader is None:
        return ""
    try:
        text = reader(data, limit)
    except Exception:  # noqa: BLE001 - a document we cannot read is kept without text
        return ""
    text = _CONTROL.sub(" ", text)
    return text[:limit].strip()


def _pdf_text(data: bytes, limit: int) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    parts: list[str] = []
    size = 0
    deadline = time.monotonic() + PDF_SECONDS
    for number, page in enumerate(reader.pages):
        if number >= PDF_PAGES_READ or size >= limit or time.monotonic() > deadline:
            break
        text = page.extract_text() or ""
        parts.append(text)
        size += len(text) + 2
    return "\n\n".join(parts)


def _docx_text(data: bytes, limit: int) -> str:
    import docx

    with zipfile.ZipFile(io.BytesIO(data)) as package:
        if any(info.file_size > XML_PART_MAX for info in package.infolist()
               if info.filename.endswith(".xml")):
            return ""  # python-docx parses whole parts: a huge one is not read at all
    document = docx.Document(io.BytesIO(data))
    parts: list[str] = []
    size = 0
    for paragraph in document.paragraphs:
        parts.append(paragraph.text)
        size += len(paragraph.text) + 1
        if size >= limit:
            return "\n".join(parts)
    for table in document.tables:
        for row in table.rows:
            line = "\t".join(cell.text for cell in row.cells)
            parts.append(line)
            size += len(line) + 1
            if size >= limit:
                return "\n".join(parts)
    return "\n".join(parts)


_RUN_TEXT = re.compile(rb"<(?:[A-Za-z]+:)?t(?:\s[^>]*)?>([^<]*)</(?:[A-Za-z]+:)?t>")
_PARAGRAPH_END = re.compile(rb"</a:p>|</si>|</row>")


def _xml_parts_text(data: bytes, limit: int, parts: list[str]) -> str:
    """Text runs (``<a:t>``, ``<t>``) of the named XML parts, paragraph by paragraph:
    read as text with a pattern rather than parsed, so no XML trickery can cost more than
    reading the (bounded) part once."""
    out: list[str] = []
    size = 0
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        for name in parts:
            with package.open(name) as part:
                xml = part.read(XML_PART_MAX)
            for block in _PARAGRAPH_END.split(xml):
                words = " ".join(html.unescape(run.decode("utf-8", "replace"))
                                 for run in _RUN_TEXT.findall(block)).strip()
                if words:
                    out.append(words)
                    size += len(words) + 1
                    if size >= limit:
                        return "\n".join(out)
    return "\n".join(out)


def _numbered(names: list[str], pattern: str) -> list[str]:
    found = [(int(m.group(1)), name) for name in names if (m := re.fullmatch(pattern, name))]
    return [name for _, name in sorted(found)]


def _pptx_text(data: bytes, limit: int) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        names = package.namelist()
    return _xml_parts_text(data, limit, _numbered(names, r"ppt/slides/slide(\d+)\.xml"))


def _xlsx_text(data: bytes, limit: int) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        names = package.namelist()
    parts = [name for name in ("xl/sharedStrings.xml",) if name in names]
    parts += _numbered(names, r"xl/worksheets/sheet(\d+)\.xml")
    return _xml_parts_text(data, limit, parts)


def _txt_text(data: bytes, limit: int) -> str:
    return data.decode("utf-8-sig", "replace")[:limit]


_READERS = {"pdf": _pdf_text, "docx": _docx_text, "pptx": _pptx_text, "xlsx": _xlsx_text,
            "txt": _txt_text}
