"""Files attached to lessons, through HTTP: upload and download, types judged by content,
the size limit, who may fetch and remove them, their text in search (for those who may
see the lesson only), and an archived lesson keeping them."""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
from pathlib import Path

import docx
import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from lessons import create_app
from lessons.extensions import db
from lessons.models import AuditRecord, Lesson, LessonFile
from tests import test_backup as backup_tests
from tests import test_csrf as csrf_tests
from tests.conftest import login
from tests.test_search import hits, total

FILE_LINK = re.compile(r'href="/lessons/([a-z0-9]{10})/files/([a-z0-9]{10})"')


@pytest.fixture
def people(make_user):
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    make_user("gb.an2", "GBR", ("analyst",))
    make_user("gb.reader", "GBR", ("contributor",))
    make_user("fr.reader", "FRA", ("contributor", "analyst"))


@pytest.fixture
def lesson(people, make_lesson):
    """A validated GBR lesson released to GBR alone: GBR's analysts edit it."""
    return make_lesson("gb.author", "validated", analyst="gb.an2",
                       title="Bridging drills", observation="Crews rehearsed bridging.",
                       discussion="", conclusion="", recommendation="Rehearse more.")


def docx_bytes(*paragraphs: str) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pdf_bytes(text: str) -> bytes:
    from weasyprint import HTML

    return HTML(string=f"<p>{text}</p>").write_pdf()


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def upload(client, public_id: str, name: str, data: bytes, **fields: str):
    """POST ``data`` as the upload form's file named ``name``, with ``fields`` (encoded in
    memory: the test client's own encoder leaves a temporary file open for large
    bodies)."""
    boundary, body = encode_multipart(MultiDict({**fields, "file": FileStorage(
        io.BytesIO(data), filename=name, content_type="application/octet-stream")}))
    return client.post(f"/lessons/{public_id}/files", data=body,
                       content_type=f'multipart/form-data; boundary="{boundary}"')


def fetch(client, url: str):
    """GET ``url`` with its body read and its file closed (a server closes it after
    sending; the test client leaves that to the caller)."""
    response = client.get(url)
    response.get_data()
    response.close()
    return response


def file_ids(client, public_id: str) -> list[str]:
    page = client.get(f"/lessons/{public_id}")
    assert page.status_code == 200
    return [file_id for lesson_id, file_id in FILE_LINK.findall(page.text)
            if lesson_id == public_id]


def stored(app) -> list[Path]:
    folder = Path(app.config["FILES_DIR"])
    return sorted(folder.iterdir()) if folder.exists() else []


def test_upload_and_download_round_trip(app, lesson, login_as):
    analyst = login_as("gb.an")
    data = PNG
    response = upload(analyst, lesson.public_id, "Bridge site.png", data)
    assert response.status_code == 302
    (file_id,) = file_ids(analyst, lesson.public_id)

    # Anyone who may see the lesson downloads it, byte for byte, as an attachment.
    reader = login_as("gb.reader")
    got = fetch(reader, f"/lessons/{lesson.public_id}/files/{file_id}")
    assert got.status_code == 200
    assert got.data == data
    assert got.mimetype == "image/png"
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert 'filename="Bridge site.png"' in got.headers["Content-Disposition"]
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in got.headers["Cache-Control"]
    assert "sandbox" in got.headers["Content-Security-Policy"]
    # Stored under a random name, never the uploader's.
    (path,) = stored(app)
    assert re.fullmatch(r"[0-9a-f]{32}", path.name) and path.read_bytes() == data
    with app.app_context():
        row = db.session.scalar(select(LessonFile))
        assert row.original_name == "Bridge site.png" and row.size == len(data)
        assert db.session.scalar(select(AuditRecord).where(
            AuditRecord.action == "file_added")).comment.startswith("Bridge site.png")


def test_names_are_sanitised_and_non_ascii_names_use_rfc_5987(app, lesson, login_as):
    analyst = login_as("gb.an")
    text = "Kräfte üben am Fluss.\n".encode()
    assert upload(analyst, lesson.public_id, "..\\..\\etc/Übung\x01 <Fluss>.txt",
                  text).status_code == 302
    (file_id,) = file_ids(analyst, lesson.public_id)
    got = fetch(analyst, f"/lessons/{lesson.public_id}/files/{file_id}")
    assert got.status_code == 200 and got.data == text
    # Text is served as plain text, never as a page.
    assert got.mimetype == "text/plain"
    disposition = got.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''%C3%9Cbung%20Fluss.txt" in disposition
    assert "/" not in disposition.split("filename*")[0].split("filename=")[1]


@pytest.mark.parametrize("name,data,words", [
    ("report.pdf", b"<html><script>alert(1)</script></html>",
     "named as a PDF but its content is plain text"),
    ("photo.png", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00",
     "is not a PNG image"),
    ("notes.docx", None, "is not a Word document"),
    ("slides.pptx", b"\x89PNG\r\n\x1a\n1234", "its content is a PNG image"),
    ("page.html", b"<html></html>", "not a kind of file Muster keeps"),
    ("empty.txt", b"", "is empty"),
])
def test_types_are_judged_by_content_and_spoofs_are_refused(app, lesson, login_as, name,
                                                            data, words):
    if data is None:  # a ZIP with the package's content types but no word/ part
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as package:
            package.writestr("[Content_Types].xml", "<Types/>")
            package.writestr("payload/run.exe", "MZ")
        data = out.getvalue()
    analyst = login_as("gb.an")
    response = upload(analyst, lesson.public_id, name, data)
    assert response.status_code == 422
    assert words in response.text.replace("&#34;", '"').replace("&#39;", "'")
    assert "Nothing was stored" in response.text or "empty" in words or "keeps" in words
    assert stored(app) == [] and file_ids(analyst, lesson.public_id) == []


def test_the_size_limit_refuses_with_a_message_and_stores_nothing(app, lesson, login_as):
    app.config["FILE_MAX_MB"] = "0.5"
    analyst = login_as("gb.an")
    big = b"a" * (700 * 1024)  # over the file limit, inside the request's room
    response = upload(analyst, lesson.public_id, "big.txt", big)
    assert response.status_code == 422
    assert "may be at most 0.5 MB" in response.text
    huge = b"a" * (3 * 1024 * 1024)  # past what the request may carry at all
    response = upload(analyst, lesson.public_id, "huge.txt", huge)
    assert response.status_code == 413
    assert "Nothing was stored" in response.text
    assert stored(app) == []
    # Inside the limit it is kept; and the limit is per file, not the forms' 8 MB.
    assert upload(analyst, lesson.public_id, "fine.txt", b"a" * 1000).status_code == 302
    app.config["FILE_MAX_MB"] = "12"
    large = b"b" * (9 * 1024 * 1024)
    assert upload(analyst, lesson.public_id, "large.txt", large).status_code == 302
    assert len(stored(app)) == 2


def test_a_lesson_holds_a_bounded_number_of_files(app, lesson, login_as, monkeypatch):
    from lessons.services import files

    monkeypatch.setattr(files, "FILES_PER_LESSON_MAX", 2)
    analyst = login_as("gb.an")
    for n in range(2):
        assert upload(analyst, lesson.public_id, f"n{n}.txt", b"note").status_code == 302
    response = upload(analyst, lesson.public_id, "n3.txt", b"note")
    assert response.status_code == 422 and "at most 2 files" in response.text
    assert len(stored(app)) == 2


def test_download_is_404_for_a_hidden_lesson_and_a_made_up_id(app, lesson, login_as):
    analyst = login_as("gb.an")
    upload(analyst, lesson.public_id, "site.png", PNG)
    (file_id,) = file_ids(analyst, lesson.public_id)
    url = f"/lessons/{lesson.public_id}/files/{file_id}"
    other = login_as("fr.reader")  # FRA: the lesson is not released to France
    hidden = fetch(other, url)
    made_up = other.get(f"/lessons/{lesson.public_id}/files/zzzzzzzzzz")
    nowhere = other.get(f"/lessons/zzzzzzzzzz/files/{file_id}")
    assert hidden.status_code == made_up.status_code == nowhere.status_code == 404
    assert hidden.data.replace(file_id.encode(), b"") == \
        nowhere.data.replace(b"zzzzzzzzzz", b"").replace(file_id.encode(), b"")
    assert PNG not in hidden.data
    assert analyst.get(f"/lessons/{lesson.public_id}/files/zzzzzzzzzz").status_code == 404


def test_removal_is_for_editors_and_audited(app, lesson, login_as):
    analyst = login_as("gb.an")
    upload(analyst, lesson.public_id, "Brief.docx", docx_bytes("Bridging brief."))
    (file_id,) = file_ids(analyst, lesson.public_id)
    url = f"/lessons/{lesson.public_id}/files/{file_id}/remove"
    assert login_as("gb.reader").post(url).status_code == 403  # sees it, may not edit
    assert login_as("fr.reader").post(url).status_code == 404  # may not see it
    assert login_as("gb.reader").get(
        f"/lessons/{lesson.public_id}").text.count("/remove") == 0
    assert len(stored(app)) == 1

    response = analyst.post(url)
    assert response.status_code == 302
    assert file_ids(analyst, lesson.public_id) == [] and stored(app) == []
    assert analyst.post(url).status_code == 404  # gone: not removed (or audited) twice
    with app.app_context():
        (entry,) = db.session.scalars(select(AuditRecord).where(
            AuditRecord.action == "file_removed"))
        assert entry.actor.username == "gb.an" and entry.comment.startswith("Brief.docx")
        assert entry.created_at is not None


def test_an_archived_lesson_keeps_its_files(app, lesson, login_as):
    analyst = login_as("gb.an")
    upload(analyst, lesson.public_id, "site.png", PNG)
    (file_id,) = file_ids(analyst, lesson.public_id)
    archiver = login_as("gb.an2")
    assert archiver.post(f"/lessons/{lesson.public_id}/transition",
                         data={"to": "archived", "note": "Superseded."}).status_code == 302
    assert file_ids(analyst, lesson.public_id) == [file_id]
    got = fetch(login_as("gb.reader"), f"/lessons/{lesson.public_id}/files/{file_id}")
    assert got.status_code == 200 and got.data == PNG
    # Nobody edits an archived lesson, so nobody removes its files or adds more.
    assert analyst.post(f"/lessons/{lesson.public_id}/files/{file_id}/remove"
                        ).status_code == 403
    assert upload(analyst, lesson.public_id, "more.png", PNG).status_code == 403
    assert len(stored(app)) == 1


@pytest.mark.parametrize("name,make", [
    ("After action.pdf", pdf_bytes),
    ("After action.docx", lambda text: docx_bytes("Summary.", text)),
])
def test_document_text_is_found_by_search_only_by_those_who_may_see_it(
        app, lesson, login_as, name, make):
    outsider = login_as("fr.reader")
    before = outsider.get("/search?q=*").text
    analyst = login_as("gb.an")
    text = "The pontoon anchorage failed under quixotic tidal loads."
    assert upload(analyst, lesson.public_id, name, make(text)).status_code == 302

    reader = login_as("gb.reader")
    page = reader.get("/search?q=quixotic").text
    assert hits(page) == [lesson.public_id] and total(page) == 1
    # The lesson's own text does not hold the word: the snippet says where it is.
    assert f"In attachment {name}:" in page
    assert "quixotic</mark>" in page
    phrase = reader.get('/search?q="pontoon anchorage"').text
    assert hits(phrase) == [lesson.public_id]

    # Another nation finds nothing, and no count or facet moves for it.
    assert hits(outsider.get("/search?q=quixotic").text) == []
    assert outsider.get("/search?q=*").text == before

    # Removing the file takes its words out of the index.
    (file_id,) = file_ids(analyst, lesson.public_id)
    analyst.post(f"/lessons/{lesson.public_id}/files/{file_id}/remove")
    assert hits(reader.get("/search?q=quixotic").text) == []


def test_add_file_works_inside_the_callers_transaction(app, lesson):
    """Other use cases (drafts from an after-action report) attach files in their own
    transaction: a rollback leaves neither a row nor bytes on disk."""
    from lessons.models import Lesson, User
    from lessons.services import files

    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "gb.an"))
        found = db.session.scalar(select(Lesson).where(Lesson.public_id == lesson.public_id))
        item = files.add_file(user, found, "aar.txt", b"Observation: the ferry was late.")
        assert item.id is not None and len(stored(app)) == 1
        db.session.rollback()
        assert stored(app) == []
        assert db.session.scalar(select(LessonFile)) is None


# Bound by assignment, not imported by name: pytest finds fixtures by module attribute.
scratch = backup_tests.scratch
scratch_url = backup_tests.scratch_url


def test_backup_and_restore_carry_the_files(app, lesson, login_as, scratch_url, tmp_path):
    analyst = login_as("gb.an")
    upload(analyst, lesson.public_id, "site.png", PNG)
    upload(analyst, lesson.public_id, "brief.docx", docx_bytes("Gantry crane notes."))
    ids = file_ids(analyst, lesson.public_id)
    file = tmp_path / "muster.backup"
    result = app.test_cli_runner().invoke(args=["backup", str(file)])
    assert result.exit_code == 0, result.output
    archive = tmp_path / "muster.backup.files.tar"
    assert f"Wrote {archive} (2 file(s)" in result.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".muster.backup")]

    fresh = create_app("testing", SQLALCHEMY_DATABASE_URI=scratch_url,
                       INDEX_DIR=str(tmp_path / "fresh-index"),
                       FILES_DIR=str(tmp_path / "fresh-files"))
    try:
        # Something already in the folder is replaced by the backup's files.
        (tmp_path / "fresh-files").mkdir()
        (tmp_path / "fresh-files" / ("0" * 32)).write_bytes(b"stale")
        result = fresh.test_cli_runner().invoke(args=["restore", str(file)])
        assert result.exit_code == 0, result.output
        assert "Restored 2 file(s) attached to lessons" in result.output
        assert sorted(p.read_bytes() for p in stored(fresh)) == sorted(
            p.read_bytes() for p in stored(app))
        client = fresh.test_client()
        login(client, "gb.reader")
        got = fetch(client, f"/lessons/{lesson.public_id}/files/{ids[0]}")
        assert got.status_code == 200 and got.data == PNG
        # The restored index holds the documents' words.
        assert hits(client.get("/search?q=gantry").text) == [lesson.public_id]
    finally:
        with fresh.app_context():
            db.session.remove()
            db.engine.dispose()


def test_a_damaged_files_archive_is_refused_before_the_database_is_touched(
        app, lesson, login_as, scratch_url, tmp_path):
    file = tmp_path / "muster.backup"
    assert app.test_cli_runner().invoke(args=["backup", str(file)]).exit_code == 0
    archive = tmp_path / "muster.backup.files.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    fresh = create_app("testing", SQLALCHEMY_DATABASE_URI=scratch_url,
                       INDEX_DIR=str(tmp_path / "fresh-index"),
                       FILES_DIR=str(tmp_path / "fresh-files"))
    try:
        result = fresh.test_cli_runner().invoke(args=["restore", str(file)])
        assert result.exit_code == 2, result.output
        assert "not a stored file" in result.output
        assert not (tmp_path / "escape").exists() and not (tmp_path / "fresh-files").exists()
    finally:
        with fresh.app_context():
            db.session.remove()
            db.engine.dispose()


csrf_app = csrf_tests.csrf_app
csrf_client = csrf_tests.csrf_client


def test_upload_and_removal_need_the_forms_token(app, lesson, csrf_client):
    client = csrf_client("gb.an")
    lesson_url = f"/lessons/{lesson.public_id}"
    form = csrf_tests.form_on(client.get(lesson_url).text, f"{lesson_url}/files")
    assert upload(client, lesson.public_id, "a.txt", b"note").status_code == 400
    with app.app_context():
        assert db.session.scalar(select(LessonFile)) is None
    token = form.value(csrf_tests.TOKEN)
    assert upload(client, lesson.public_id, "a.txt", b"note",
                  csrf_token=token).status_code == 302
    (file_id,) = file_ids(client, lesson.public_id)
    remove_url = f"{lesson_url}/files/{file_id}/remove"
    form = csrf_tests.form_on(client.get(lesson_url).text, remove_url)
    assert client.post(remove_url).status_code == 400
    assert file_ids(client, lesson.public_id) == [file_id]
    assert client.post(remove_url, data=form.data()).status_code == 302
    assert file_ids(client, lesson.public_id) == []


def xlsx_bytes(*cells: str) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    for row, value in enumerate(cells, start=1):
        book.active.cell(row=row, column=1, value=value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def pptx_bytes(*slides: str) -> bytes:
    """A minimal PowerPoint package: content types and one slide part per text."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        package.writestr("[Content_Types].xml", "<Types/>")
        package.writestr("ppt/presentation.xml", "<p:presentation/>")
        for number, text in enumerate(slides, start=1):
            package.writestr(f"ppt/slides/slide{number}.xml",
                             f"<p:sld><p:txBody><a:p><a:r><a:t>{text}</a:t></a:r></a:p>"
                             "</p:txBody></p:sld>")
    return out.getvalue()


def test_slides_and_workbooks_are_told_apart_and_their_text_read():
    from lessons import filetypes

    book, deck = xlsx_bytes("Fuel &amp; water", "Convoy timings"), pptx_bytes(
        "Gap crossing", "Bridge &lt;class 70&gt;")
    assert filetypes.identify("plan.xlsx", book).key == "xlsx"
    assert filetypes.identify("brief.pptx", deck).key == "pptx"
    with pytest.raises(filetypes.Refused, match="its content is an Excel workbook"):
        filetypes.identify("brief.pptx", book)
    assert "Convoy timings" in filetypes.extract_text("xlsx", book)
    assert filetypes.extract_text("pptx", deck) == "Gap crossing\nBridge <class 70>"
    # Unreadable documents keep no text rather than fail; text is bounded.
    assert filetypes.extract_text("pdf", b"%PDF-1.4 broken") == ""
    assert filetypes.extract_text("docx", b"PK\x03\x04 broken") == ""
    assert len(filetypes.extract_text("txt", b"word " * 100_000, limit=1000)) <= 1000
    assert filetypes.extract_text("png", PNG) == ""


def test_names_are_cleaned_and_bounded():
    from lessons import filetypes
    from lessons.rules import FILE_NAME_MAX

    assert filetypes.clean_name("C:\\Users\\me\\AAR  final.PDF") == "AAR final.PDF"
    assert filetypes.clean_name("../.hidden.txt") == "hidden.txt"
    long = filetypes.clean_name("x" * 500 + ".docx")
    assert len(long) == FILE_NAME_MAX and long.endswith(".docx")
    with pytest.raises(filetypes.Refused):
        filetypes.clean_name("../..")


@pytest.mark.parametrize("value", ["0", "-1", "lots", "5000"])
def test_a_malformed_file_size_setting_stops_the_start(value):
    with pytest.raises(RuntimeError, match="MUSTER_FILE_MAX_MB"):
        create_app("testing", FILE_MAX_MB=value)


def test_workbook_words_are_searchable(app, lesson, login_as):
    analyst = login_as("gb.an")
    assert upload(analyst, lesson.public_id, "Movement table.xlsx",
                  xlsx_bytes("Serial", "Ferry crossing at Kluane")).status_code == 302
    page = login_as("gb.reader").get("/search?q=kluane").text
    assert hits(page) == [lesson.public_id]
    assert "In attachment Movement table.xlsx:" in page


def test_two_uploads_at_once_never_take_a_lesson_past_its_limit(app, lesson, login_as,
                                                                monkeypatch):
    """A lesson one file short of its limit, two uploads sent at the same moment over real
    HTTP: one is stored, the other is refused with the limit's message, never a 500."""
    import http.client
    import time

    from lessons import filetypes
    from lessons.services import files
    from tests.http_client import Http, race, serving

    monkeypatch.setattr(files, "FILES_PER_LESSON_MAX", 2)
    read_text = filetypes.extract_text

    def slow_text(key: str, data: bytes) -> str:  # both past the count before either stores
        time.sleep(0.3)
        return read_text(key, data)

    monkeypatch.setattr(filetypes, "extract_text", slow_text)
    assert upload(login_as("gb.an"), lesson.public_id, "first.txt", b"note").status_code == 302

    def send_file(tab: Http, name: str) -> tuple[int, str]:
        boundary, body = encode_multipart(MultiDict({"file": FileStorage(
            io.BytesIO(b"note"), filename=name, content_type="text/plain")}))
        connection = http.client.HTTPConnection(tab.address, timeout=30)
        try:
            connection.request("POST", f"/lessons/{lesson.public_id}/files", body=body,
                               headers={"Content-Type":
                                        f'multipart/form-data; boundary="{boundary}"',
                                        "Cookie": "; ".join(f"{k}={v}" for k, v
                                                            in tab.cookies.items())})
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    with serving(app) as address:
        tabs = [Http(address).login("gb.an") for _ in range(2)]
        replies = race(*[lambda tab=tab, n=n: send_file(tab, f"racer{n}.txt")
                         for n, tab in enumerate(tabs)])
    assert sorted(status for status, _ in replies) == [302, 422], [
        (status, text[:300]) for status, text in replies]
    assert any("at most 2 files" in text for status, text in replies if status == 422)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LessonFile).join(Lesson)
                                 .where(Lesson.public_id == lesson.public_id)) == 2
    assert len(stored(app)) == 2
