"""After-action reports in: reports of several layouts become proposals with the right
parts; unreadable, scanned, spoofed and oversized files are refused with a clear 422;
through HTTP a contributor turns a five-observation report into five drafts, with drop,
merge, ownership of the upload and CSRF checked."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from datetime import date

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from lessons import create_app
from lessons.extensions import db
from lessons.models import AuditRecord, Lesson
from lessons.services import aar
from tests import aar_reports as reports
from tests import test_csrf as csrf
from tests.conftest import login

MB = 1024 * 1024

csrf_client = csrf.csrf_client  # a logged-in client of ``csrf_app`` below


@pytest.fixture
def csrf_app(app: Flask, database_url: str) -> Iterator[Flask]:
    """The app with CSRF on, on the ``app`` fixture's database, index and files folder
    (the drafts it creates keep the report as a file)."""
    protected = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                           INDEX_DIR=app.config["INDEX_DIR"],
                           FILES_DIR=app.config["FILES_DIR"], WTF_CSRF_ENABLED=True)
    yield protected
    with protected.app_context():
        db.session.remove()
        db.engine.dispose()


def read(data: bytes | str) -> aar.Report:
    return aar.read_report(data.encode() if isinstance(data, str) else data,
                           max_bytes=10 * MB)


# --- parsing: five layouts ---------------------------------------------------------------
def test_labels_in_text_give_one_proposal_per_observation():
    report = read(reports.LABELLED_TXT)
    assert report.kind == "txt"
    assert len(report.proposals) == 5
    first = report.proposals[0]
    assert first.title == "HF radios of the two brigades could not talk at night"
    assert first.observation.startswith("HF radios of the two brigades")
    assert "crypto fill" in first.observation
    assert first.discussion == "The key change at midnight was announced only in our own orders."
    assert first.recommendation == ("Publish key changes in the coalition communications "
                                    "plan.")
    assert all(p.observation and p.discussion and p.recommendation for p in report.proposals)
    assert report.context == aar.Context(source_event="Exercise STEADFAST JUPITER 2026",
                                         observed_on=date(2026, 3, 12),
                                         unit="1 Signal Regiment")


def test_word_headings_give_titles_and_parts():
    report = read(reports.docx_with_headings())
    assert report.kind == "docx"
    assert [p.title for p in report.proposals] == [
        "Network accounts for partners", "Printer drivers on coalition laptops",
        "Spare power supplies"]
    accounts = report.proposals[0]
    assert accounts.observation == "Partner staff waited days for accounts."
    assert accounts.discussion == "Requests went through three approval steps."
    assert accounts.recommendation == "Pre-approve partner accounts from the nominal roll."
    # The introduction and the conclusions are not observations, nor part of one.
    assert not any("availability" in p.recommendation or "ten days" in p.observation
                   for p in report.proposals)
    assert report.context.source_event == "Exercise COALITION WARRIOR 2026"
    assert report.context.observed_on == date(2026, 9, 21)
    assert report.context.unit == "7th Signal Company"


def test_numbered_items_give_proposals_and_sections_are_left_out():
    report = read(reports.NUMBERED_TXT)
    assert [p.title for p in report.proposals] == [
        "Night landing zones were marked differently by each nation",
        "Interpreters were assigned too late", "Water resupply ran short on day three"]
    landing = report.proposals[0]
    assert "Pilots aborted two landings" in landing.observation  # its wrapped line too
    assert landing.recommendation == "Use the coalition standard for landing zone marking."
    assert report.proposals[2].discussion == ("Temperatures stayed above 38 degrees for "
                                              "five days.")
    assert report.context.source_event == "Operation PACIFIC SHIELD"
    assert report.context.observed_on == date(2026, 5, 4)


def test_sustain_items_are_best_practice_and_improve_items_lessons():
    report = read(reports.SUSTAIN_TXT)
    assert [p.kind for p in report.proposals] == ["best_practice", "best_practice",
                                                  "lesson", "lesson"]
    datum = report.proposals[2]
    assert datum.title == "Map data arrived in three different datums"
    assert datum.recommendation == "Issue one datum in the operation order."
    assert not any("training objectives" in p.observation for p in report.proposals)
    assert report.context.unit == "2nd Brigade Headquarters"


def test_a_pdf_with_observation_headings():
    report = read(reports.pdf_report())
    assert report.kind == "pdf"
    assert [p.title for p in report.proposals] == ["Convoy timings", "Fuel coupons"]
    assert report.proposals[1].observation == "Partner vehicles could not refuel at our points."
    assert report.proposals[1].discussion == ("Fuel coupons of one nation were not accepted "
                                              "by the other.")
    assert report.proposals[0].recommendation == ("Agree a single customs check at the port "
                                                  "of entry.")
    assert report.context.source_event == "Exercise TRIDENT LANCE 2026"
    assert report.context.observed_on == date(2026, 10, 2)


def test_a_long_pdf_loses_its_running_marking_and_page_numbers():
    body = "".join(f"<h2>Observation {n}: Item {n}</h2><p>{'Words about it. ' * 40}</p>"
                   f"<p>Recommendation: Fix item {n}.</p>" for n in range(1, 9))
    html = ("<html><head><style>@page { @top-center { content: 'UNCLASSIFIED' } "
            "@bottom-center { content: 'Page ' counter(page) } }</style></head><body>"
            f"<p>Exercise: LONG REPORT</p>{body}</body></html>")
    report = read(reports.pdf_report(html))
    assert len(report.proposals) == 8
    text = " ".join(p.observation + p.recommendation for p in report.proposals)
    assert "UNCLASSIFIED" not in text and not re.search(r"Page \d", text)


def test_issue_discussion_recommendation_and_jull_labels():
    report = read("Topic: Coalition chat\nObservation: LNOs could not join the chat.\n"
                  "Discussion: Accounts were national.\nLesson learned: Plan accounts early."
                  "\nRecommendation: Issue coalition accounts.\n\n"
                  "Issue: Fuel coupons were refused.\nRecommendation: Accept them.\n")
    assert [p.title for p in report.proposals] == ["Coalition chat",
                                                   "Fuel coupons were refused"]
    chat = report.proposals[0]
    assert chat.observation == "LNOs could not join the chat."
    assert chat.conclusion == "Plan accounts early."


def test_word_numbered_lists_and_julls_tables():
    listed = read(reports.docx_numbered_list())
    assert [p.title for p in listed.proposals] == [
        "Route clearance reports reached the convoy late",
        "Recovery assets were not on the movement table",
        "Casualty reports went to the wrong net"]
    assert listed.proposals[0].observation == ("Route clearance reports reached the convoy "
                                               "late. Two convoys waited.")
    assert listed.context.source_event == "Operation SOUTHERN CROSS"
    table = read(reports.docx_jull_table())
    assert [(p.title, p.observation, p.recommendation) for p in table.proposals] == [
        ("Ammunition forecasts", "Forecasts used two formats.", "Use the coalition format."),
        ("Bridge classification", "Bridges were classified twice.",
         "Share one classification table.")]


def test_a_discussion_with_a_numbered_list_stays_one_observation():
    report = read("Observation 1: Radios\nThe radios failed.\nDiscussion:\n"
                  "1. Batteries were flat.\n2. Crypto was old.\nRecommendation: Check both."
                  "\n\nObservation 2: Maps\nMaps were old.\n")
    assert [p.title for p in report.proposals] == ["Radios", "Maps"]
    assert "Batteries were flat." in report.proposals[0].discussion
    assert "Crypto was old." in report.proposals[0].discussion


@pytest.mark.parametrize("seed", range(30))
def test_damaged_files_are_refused_never_crash(seed):
    import random

    rng = random.Random(seed)
    good = [reports.pdf_report(), reports.docx_with_headings(), reports.LABELLED_TXT.encode()]
    data = bytearray(good[seed % 3])
    for _ in range(rng.randint(1, 40)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    if seed % 5 == 0:
        data = data[: rng.randrange(1, len(data))]
    try:
        report = read(bytes(data))
    except aar.Unreadable as exc:
        assert exc.message
    else:
        assert 1 <= len(report.proposals) <= aar.PROPOSALS_MAX


# --- parsing: refusals ------------------------------------------------------------------
def refused(data: bytes, **kw) -> str:
    with pytest.raises(aar.Unreadable) as caught:
        aar.read_report(data, max_bytes=kw.get("max_bytes", 10 * MB))
    return caught.value.message


def test_an_image_only_pdf_is_refused_as_scanned():
    assert "scanned" in refused(reports.image_only_pdf())


def test_type_is_told_by_content_not_by_name():
    # Text in a file called .pdf is read as the text it is (the caller never passes names).
    assert aar.sniff(reports.LABELLED_TXT.encode()) == "txt"
    assert "not a Word document" in refused(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00PE\x00\x00")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("payload.exe", b"MZ")
    assert "zip archive, not a Word document" in refused(archive.getvalue())
    assert "cannot be read" in refused(b"%PDF-1.7\nnot really a pdf")
    assert "NUL" in refused(b"Observation: text\x00 with a NUL")


def test_oversize_empty_and_observationless_reports_are_refused():
    assert "reports of up to" in refused(b"x" * (MB + 1), max_bytes=MB)
    assert "empty" in refused(b"   \n\n ")
    assert "No observations were found" in refused(b"Dear all, thanks for a good week.")


def test_too_many_observations_are_refused():
    many = "\n".join(f"Observation {n}: Thing {n}\nIt broke." for n in range(1, 62))
    assert "at most 50" in refused(many.encode())


def test_merge_and_drop_combine_proposals():
    one, two, three = (aar.Proposal(title=t, observation=f"{t} happened.")
                       for t in ("One", "Two", "Three"))
    drafts = aar.combine([(one, True, False), (two, True, True), (three, False, False)])
    assert len(drafts) == 1
    assert drafts[0][1].observation == "One happened.\n\nTwo happened."
    with pytest.raises(aar.NothingKept):
        aar.combine([(one, False, False)])
    with pytest.raises(aar.NothingKept):
        aar.combine([(one, True, True)])


# --- through HTTP -----------------------------------------------------------------------
@pytest.fixture
def people(make_user):
    make_user("gb.writer", "GBR", ("contributor",), unit="HQ ARRC")
    make_user("gb.other", "GBR", ("contributor",))
    make_user("gb.analyst", "GBR", ("analyst",))


def upload(client, data: bytes, name: str = "report.docx"):
    # Encoded in memory: the test client spools a large form to a temporary file that
    # it leaves open when the app refuses the body unread.
    boundary, body = encode_multipart(MultiDict({"file": FileStorage(io.BytesIO(data),
                                                                     name)}))
    return client.post("/lessons/aar", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}")


def proposal_form(page: str) -> dict[str, str]:
    """The review page's form as a browser would send it untouched."""
    parser = csrf.FormParser()
    parser.feed(page)
    review = [f for f in parser.forms if f.method == "post" and f.action is None]
    assert len(review) == 1
    return dict(review[0].fields)


def drafts_of(app, username: str) -> list[Lesson]:
    with app.app_context():
        lessons = list(db.session.scalars(select(Lesson).where(
            Lesson.author.has(username=username)).order_by(Lesson.id)))
        for lesson in lessons:
            lesson.tags, lesson.releasable_to  # noqa: B018 - loaded before the session ends
        db.session.expunge_all()
        return lessons


def test_five_observations_become_five_drafts_in_one_sitting(app, people, login_as):
    client = login_as("gb.writer")
    assert "Draft lessons from a report" in client.get("/lessons").text
    assert "Draft lessons from a report" in client.get("/lessons/new").text
    response = upload(client, reports.five_observation_docx(), "STEADFAST-AAR.docx")
    assert response.status_code == 303
    review_url = response.location
    page = client.get(review_url)
    assert page.status_code == 200
    assert page.text.count('data-testid="proposal"') == 5
    assert "Exercise STEADFAST JUPITER 2026" in page.text
    fields = proposal_form(page.text)
    done = client.post(review_url, data=fields)
    assert done.status_code == 303, done.text
    listing = client.get(done.location)
    assert listing.status_code == 200
    assert listing.text.count("data-lesson=") == 5
    made = drafts_of(app, "gb.writer")
    assert len(made) == 5
    assert {lesson.status for lesson in made} == {"draft"}
    assert {lesson.source_event for lesson in made} == {"Exercise STEADFAST JUPITER 2026"}
    assert {lesson.observed_on for lesson in made} == {date(2026, 3, 12)}
    assert {lesson.unit for lesson in made} == {"1 Signal Regiment"}
    assert made[0].title == "HF radios of the two brigades could not talk at night"
    assert made[0].recommendation == ("Publish key changes in the coalition communications "
                                      "plan.")
    with app.app_context():
        actions = db.session.scalars(select(AuditRecord.action).where(
            AuditRecord.lesson_id.in_([lesson.id for lesson in made]))).all()
    assert actions.count("created") == 5 and actions.count("drafted_from_report") == 5
    # Each draft keeps the report as an attachment.
    for lesson in made:
        detail = client.get(f"/lessons/{lesson.public_id}")
        assert "STEADFAST-AAR.docx" in detail.text
    # Creating again creates nothing more.
    again = client.post(review_url, data=fields)
    assert again.status_code == 409
    assert len(drafts_of(app, "gb.writer")) == 5


def test_drop_and_merge(app, people, login_as):
    client = login_as("gb.writer")
    review_url = upload(client, reports.LABELLED_TXT.encode(), "aar.txt").location
    fields = proposal_form(client.get(review_url).text)
    fields.pop("proposals-1-keep")  # drop the second
    fields["proposals-3-merge"] = "y"  # the fourth joins the third
    fields["proposals-0-title"] = "Night HF failed between brigades"
    fields["unit"] = "1st (UK) Division"
    response = client.post(review_url, data=fields)
    assert response.status_code == 303
    made = drafts_of(app, "gb.writer")
    assert [lesson.title for lesson in made] == [
        "Night HF failed between brigades",
        "Medical evacuation requests used two different nine-line formats",
        "Air tasking orders reached the land component late"]
    merged = made[1]
    assert "Fuel reports were sent by e-mail" in merged.observation
    assert "No shared logistics tracker existed." in merged.discussion
    assert {lesson.unit for lesson in made} == {"1st (UK) Division"}


def test_refusals_say_why_and_store_nothing(app, people, login_as):
    client = login_as("gb.writer")
    scanned = upload(client, reports.image_only_pdf(), "scan.pdf")
    assert scanned.status_code == 422
    assert "looks scanned" in scanned.text
    spoofed = upload(client, reports.NUMBERED_TXT.encode(), "report.pdf")
    assert spoofed.status_code == 303  # read as the text it is
    exe = upload(client, b"MZ\x90\x00" + bytes(range(256)) * 10, "report.docx")
    assert exe.status_code == 422 and "not a Word document" in exe.text
    app.config["AAR_MAX_MB"] = "0.5"
    big = upload(client, reports.LABELLED_TXT.encode() * 1000, "big.txt")
    assert big.status_code == 422 and "reports of up to 0.5 MB" in big.text
    huge = upload(client, b"x" * (2 * MB), "huge.txt")
    assert huge.status_code == 413
    app.config["AAR_MAX_MB"] = "10"
    empty = upload(client, b"", "empty.txt")
    assert empty.status_code == 422
    assert drafts_of(app, "gb.writer") == []


def test_nothing_kept_or_no_title_is_refused_on_the_page(app, people, login_as):
    client = login_as("gb.writer")
    review_url = upload(client, reports.SUSTAIN_TXT.encode(), "aar.txt").location
    fields = proposal_form(client.get(review_url).text)
    none_kept = {k: v for k, v in fields.items() if not k.endswith("-keep")}
    response = client.post(review_url, data=none_kept)
    assert response.status_code == 422 and "keep at least one" in response.text
    fields["proposals-2-title"] = ""
    response = client.post(review_url, data=fields)
    assert response.status_code == 422
    # Said at the top, and beside the third proposal's title, which keeps what was typed.
    assert "error-summary" in response.text
    assert re.search(r'id="proposals-2-title"[^>]*aria-invalid="true"|'
                     r'aria-invalid="true"[^>]*id="proposals-2-title"', response.text)
    assert fields["proposals-3-observation"] in response.text
    assert drafts_of(app, "gb.writer") == []


def test_another_users_report_is_not_found(app, people, login_as):
    writer, other = login_as("gb.writer"), login_as("gb.other")
    review_url = upload(writer, reports.LABELLED_TXT.encode(), "aar.txt").location
    fields = proposal_form(writer.get(review_url).text)
    assert other.get(review_url).status_code == 404
    assert other.post(review_url, data=fields).status_code == 404
    assert drafts_of(app, "gb.other") == []
    analyst = login_as("gb.analyst")
    assert analyst.get("/lessons/aar").status_code == 403
    assert analyst.get(review_url).status_code == 403


def test_uploads_share_the_import_budget(app, database_url, people, tmp_path):
    throttled = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                           INDEX_DIR=app.config["INDEX_DIR"], FILES_DIR=str(tmp_path / "f"),
                           IMPORT_RATE_LIMIT="2 per minute")
    try:
        client = throttled.test_client()
        login(client, "gb.writer")
        assert upload(client, reports.LABELLED_TXT.encode(), "a.txt").status_code == 303
        assert client.post("/lessons/aar").status_code == 422  # no file, but it counts
        refused = upload(client, reports.LABELLED_TXT.encode(), "a.txt")
        assert refused.status_code == 429
        assert client.get("/lessons/aar").status_code == 200  # the form is not limited
    finally:
        with throttled.app_context():
            db.engine.dispose()


def test_the_forms_need_their_csrf_token(csrf_app, people, csrf_client):
    client = csrf_client("gb.writer")
    form = csrf.form_on(client.get("/lessons/aar").text, None)
    data = {**dict(form.data()), "file": (io.BytesIO(reports.LABELLED_TXT.encode()), "a.txt")}
    bare = {"file": (io.BytesIO(reports.LABELLED_TXT.encode()), "a.txt")}
    csrf.assert_refused(client.post("/lessons/aar", data=bare,
                                    content_type="multipart/form-data"))
    response = client.post("/lessons/aar", data=data, content_type="multipart/form-data")
    assert response.status_code == 303
    review = csrf.form_on(client.get(response.location).text, None)
    csrf.assert_refused(client.post(response.location, data=review.data(token=False)))
    assert client.post(response.location, data=review.data()).status_code == 303


def _upload_over_http(tab, data: bytes, name: str):
    """A multipart upload through ``tab``'s session (``Http.send`` sends forms only)."""
    import http.client

    from tests.http_client import Reply

    boundary, body = encode_multipart(MultiDict({"file": FileStorage(io.BytesIO(data),
                                                                     name)}))
    connection = http.client.HTTPConnection(tab.address, timeout=30)
    try:
        connection.request("POST", "/lessons/aar", body=body, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Cookie": "; ".join(f"{k}={v}" for k, v in tab.cookies.items())})
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                     response.read().decode())
    finally:
        connection.close()


def test_create_drafts_clicked_twice_at_once_creates_them_once(app, people):
    """Two "Create drafts" for one report at the same moment (a double click, two tabs):
    one creates the drafts, the other is told they were already created; never two
    sets of drafts, never a 500."""
    from tests.http_client import Http, race, serving

    with serving(app) as address:
        first = Http(address).login("gb.writer")
        staged = _upload_over_http(first, reports.five_observation_docx(), "aar.docx")
        assert staged.status == 303, staged.text[:300]
        path = staged.headers["location"].split(address, 1)[-1]
        fields = proposal_form(first.get(path).text)
        second = Http(address, cookies=dict(first.cookies))
        replies = race(*[lambda tab=tab: tab.send("POST", path, form=fields)
                         for tab in (first, second)])
    assert sorted(reply.status for reply in replies) == [303, 409], \
        [(r.status, r.text[:300]) for r in replies]
    assert len(drafts_of(app, "gb.writer")) == 5


def test_concurrent_uploads_keep_at_most_five_reports_waiting(app, people):
    """Eight uploads by one user at the same moment: the five-a-user limit on reports
    waiting for review holds, and every upload is answered."""
    from lessons.models import StagedImport
    from lessons.services import aar_drafts
    from tests.http_client import Http, race, serving

    with serving(app) as address:
        tab = Http(address).login("gb.writer")
        replies = race(*[lambda n=n: _upload_over_http(
            tab, reports.LABELLED_TXT.encode(), f"r{n}.txt") for n in range(8)])
    assert [reply.status for reply in replies] == [303] * 8, \
        [(r.status, r.text[:300]) for r in replies]
    with app.app_context():
        waiting = db.session.scalars(select(StagedImport).where(
            StagedImport.format == aar_drafts.FORMAT)).all()
        assert len(waiting) == aar_drafts.PENDING_MAX
