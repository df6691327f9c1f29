"""After-action reports laid out in different ways, made here for the tests of drafting
lessons from them (tests/test_aar.py, tests/test_browser_aar.py)."""

from __future__ import annotations

import io

LABELLED_TXT = """\
POST-EXERCISE REPORT
Exercise: STEADFAST JUPITER 2026
Date: 2026-03-12
Unit: 1 Signal Regiment

Observation: HF radios of the two brigades could not talk at night.
The crypto fill of the partner brigade was a day older than ours.
Discussion: The key change at midnight was announced only in our own orders.
Recommendation: Publish key changes in the coalition communications plan.

Observation: The liaison officers had no access to the mission network.
Discussion: Accounts took four days to create.
Recommendation: Create liaison officer accounts before the exercise starts.

Observation: Medical evacuation requests used two different nine-line formats.
Discussion: Each nation trained on its own version.
Recommendation: Agree one nine-line format in the medical annex.

Observation: Fuel reports were sent by e-mail and lost in inboxes.
Discussion: No shared logistics tracker existed.
Recommendation: Track fuel in the shared logistics tool.

Observation: Air tasking orders reached the land component late.
Discussion: The distribution list was out of date.
Recommendation: Review the distribution list at every battle rhythm meeting.
"""

NUMBERED_TXT = """\
After action report
Operation: PACIFIC SHIELD
Date: 4 May 2026
Unit: 3rd Battalion, Royal Australian Regiment

1. Introduction
This report covers the battalion's part in the operation.

2. Night landing zones were marked differently by each nation. Pilots aborted two
landings because the markings did not match the brief.
Recommendation: Use the coalition standard for landing zone marking.

3) Interpreters were assigned too late. Patrols waited up to three hours.
Recommendation: Assign interpreters with the patrol orders.

4. Water resupply ran short on day three. The planning figure assumed cooler weather.
Discussion: Temperatures stayed above 38 degrees for five days.
Recommendation: Plan water at the hot-weather rate.
"""

SUSTAIN_TXT = """\
Exercise: NORTHERN STAR 26
Dates: 3-14 June 2026
Unit: 2nd Brigade Headquarters

Summary
The brigade met its training objectives.

SUSTAIN
- The daily synchronisation meeting kept every cell informed.
- Liaison officers sat with the partner headquarters from day one.

IMPROVE
- Map data arrived in three different datums. Gunners lost time converting grids.
  Recommendation: Issue one datum in the operation order.
- Night movement tables were not shared with partners.
"""


def docx_with_headings() -> bytes:
    """Word headings: each observation a Heading 2, its parts under Heading 3s."""
    from docx import Document

    document = Document()
    document.add_heading("After-action report", 0)
    document.add_paragraph("Exercise: COALITION WARRIOR 2026")
    document.add_paragraph("Date: 21 September 2026")
    document.add_paragraph("Unit: 7th Signal Company")
    document.add_heading("Introduction", 1)
    document.add_paragraph("The company provided the coalition network for ten days.")
    document.add_heading("Observations", 1)
    for title, seen, why, fix in (
        ("Network accounts for partners", "Partner staff waited days for accounts.",
         "Requests went through three approval steps.",
         "Pre-approve partner accounts from the nominal roll."),
        ("Printer drivers on coalition laptops", "Nobody could print orders in the "
         "partner cell.", "The drivers were not in the approved software list.",
         "Add the drivers to the approved list before deployment."),
        ("Spare power supplies", "Two servers stopped when their power supply failed.",
         "No spares were packed.", "Pack one spare power supply per server."),
    ):
        document.add_heading(title, 2)
        document.add_paragraph(seen)
        document.add_heading("Discussion", 3)
        document.add_paragraph(why)
        document.add_heading("Recommendation", 3)
        document.add_paragraph(fix)
    document.add_heading("Conclusions", 1)
    document.add_paragraph("The network met its availability target.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


PDF_HTML = """\
<html><body>
<h1>After action report</h1>
<p>Exercise: TRIDENT LANCE 2026</p>
<p>Date: 2026-10-02</p>
<p>Unit: Multinational Logistics Battalion</p>
<h2>Observation 1: Convoy timings</h2>
<p>Convoys left the port two hours after the agreed time.</p>
<p>Discussion: Customs paperwork was checked twice, once by each nation.</p>
<p>Recommendation: Agree a single customs check at the port of entry.</p>
<h2>Observation 2: Fuel coupons</h2>
<p>Partner vehicles could not refuel at our points.</p>
<p>Discussion: Fuel coupons of one nation were not accepted by the other.</p>
<p>Recommendation: Accept NATO fuel coupons at every point.</p>
</body></html>
"""


def pdf_report(html: str = PDF_HTML) -> bytes:
    import weasyprint

    return weasyprint.HTML(string=html).write_pdf()


def image_only_pdf() -> bytes:
    """A "scanned" report: a page that is a picture, without any text in it."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (600, 800), "white")
    ImageDraw.Draw(image).rectangle((50, 50, 550, 120), fill="black")
    out = io.BytesIO()
    image.save(out, format="PDF")
    return out.getvalue()


def docx_numbered_list() -> bytes:
    """Word's own numbered list (the numbers are not in the text) under one heading."""
    from docx import Document

    document = Document()
    document.add_heading("Observations", 1)
    document.add_paragraph("Operation: SOUTHERN CROSS")
    for text in ("Route clearance reports reached the convoy late. Two convoys waited.",
                 "Recovery assets were not on the movement table.",
                 "Casualty reports went to the wrong net."):
        document.add_paragraph(text, style="List Number")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_jull_table() -> bytes:
    """A JULLS-style form: one table per observation, labels in the first column."""
    from docx import Document

    document = Document()
    document.add_paragraph("Exercise: BALTIC SHIELD 2026")
    for topic, seen, fix in (("Ammunition forecasts", "Forecasts used two formats.",
                              "Use the coalition format."),
                             ("Bridge classification", "Bridges were classified twice.",
                              "Share one classification table.")):
        table = document.add_table(rows=3, cols=2)
        for row, (label, value) in zip(table.rows, (("Topic", topic), ("Observation", seen),
                                                    ("Recommendation", fix)), strict=True):
            row.cells[0].text, row.cells[1].text = label, value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def five_observation_docx() -> bytes:
    """The labelled report as a Word document (the HTTP and browser flows upload it)."""
    from docx import Document

    document = Document()
    for line in LABELLED_TXT.splitlines():
        if line.strip():
            document.add_paragraph(line)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
