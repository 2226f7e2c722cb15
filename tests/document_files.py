"""Real documents for the documents tests, written by real writers: reportlab (PDF), pypdf (encryption),
python-docx (DOCX), odfpy (ODT), zipfile (EPUB, by the OCF layout), plain text for Markdown, HTML and RST."""

from __future__ import annotations

import zipfile
from pathlib import Path

# Facts with unusual words, so that a search for one finds exactly its passage.
PDF_PAGES = [
    ("Introduction", "This handbook describes the cooling system of the Aldebaran research station."),
    ("Pumps", "The primary coolant pump is model ZX-4471. It circulates glycol through the heat exchangers "
              "at forty litres per minute. Replace its seals every eighteen months."),
    ("Emergency", "If the reactor temperature exceeds 340 degrees, the operator must open the quench valve "
                  "labelled Q7 and evacuate the lower deck within six minutes."),
]


def write_pdf(path: Path, pages: list[tuple[str, str]] = PDF_PAGES, title: str = "Station Handbook") -> Path:
    """One heading and paragraph per page, with an outline entry per page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setTitle(title)
    for number, (heading, text) in enumerate(pages):
        pdf.bookmarkPage(f"p{number}")
        pdf.addOutlineEntry(heading, f"p{number}", level=0)
        pdf.setFont("Helvetica-Bold", 16)
        pdf.drawString(72, 770, heading)
        pdf.setFont("Helvetica", 11)
        line, y = "", 740
        for word in text.split():
            if len(line) + len(word) > 80:
                pdf.drawString(72, y, line)
                line, y = "", y - 16
            line = f"{line} {word}".strip()
        pdf.drawString(72, y, line)
        pdf.showPage()
    pdf.save()
    return path


def write_image_pdf(path: Path) -> Path:
    """A scan: one page holding only a picture of text, no text layer."""
    from PIL import Image, ImageDraw, ImageFont
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    image = Image.new("RGB", (800, 200), "white")
    ImageDraw.Draw(image).text((20, 60), "SCANNED INVOICE 2291", fill="black", font=ImageFont.load_default(size=48))
    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.drawImage(ImageReader(image), 50, 500, width=500, height=125)
    pdf.showPage()
    pdf.save()
    return path


def write_encrypted_pdf(path: Path, source: Path) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(source).pages:
        writer.add_page(page)
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def write_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "Garden Notes"
    document.add_heading("Garden Notes", level=0)
    document.add_heading("Tomatoes", level=1)
    document.add_paragraph("Plant the Brandywine tomatoes after the last frost, sixty centimetres apart.")
    document.add_heading("Roses", level=1)
    document.add_paragraph("Prune the climbing roses in late February and feed them with bonemeal.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Compost"
    table.rows[0].cells[1].text = "Turn the heap every fortnight"
    document.save(str(path))
    return path


def write_odt(path: Path) -> Path:
    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    document = OpenDocumentText()
    document.text.addElement(H(outlinelevel=1, text="Bicycle Repair"))
    document.text.addElement(P(text="To fix a puncture, find the hole by submerging the inner tube in water."))
    document.text.addElement(H(outlinelevel=2, text="Brakes"))
    document.text.addElement(P(text="Adjust the cantilever brakes so the pads touch the rim squarely."))
    document.save(str(path))
    return path


def write_epub(path: Path) -> Path:
    container = ('<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                 '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
                 '</rootfiles></container>')
    opf = ('<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
           '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Voyage Log</dc:title>'
           '<dc:identifier id="id">voyage</dc:identifier></metadata>'
           '<manifest><item id="c1" href="one.xhtml" media-type="application/xhtml+xml"/>'
           '<item id="c2" href="two.xhtml" media-type="application/xhtml+xml"/></manifest>'
           '<spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>')
    chapter = ('<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>{t}</title></head>'
               '<body><h1>{t}</h1><p>{p}</p></body></html>')
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/container.xml", container)
        archive.writestr("OEBPS/content.opf", opf)
        archive.writestr("OEBPS/one.xhtml", chapter.format(t="Departure", p="The schooner Albatross left Lisbon at dawn."))
        archive.writestr("OEBPS/two.xhtml", chapter.format(t="Storm", p="A gale tore the mainsail off the Azores."))
    return path


def write_markdown(path: Path) -> Path:
    path.write_text("# Kitchen Guide\n\nIntro text about the kitchen.\n\n## Bread\n\n"
                    "Knead the sourdough for twelve minutes, then let it rise overnight in the fridge.\n\n"
                    "## Soup\n\nSimmer the lentil soup with cumin for forty minutes.\n", encoding="utf-8")
    return path


def write_html(path: Path) -> Path:
    path.write_text("<html><head><title>Astronomy Club</title><script>var x = 'hidden script';</script></head>"
                    "<body><nav>Home | About</nav><h1>Astronomy Club</h1><p>Meetings are on Thursdays.</p>"
                    "<h2>Telescopes</h2><p>The club owns a Dobsonian reflector with a 300 mm mirror.</p></body></html>",
                    encoding="utf-8")
    return path


def write_rst(path: Path) -> Path:
    path.write_text("Chess Openings\n==============\n\nA short guide.\n\nSicilian Defence\n----------------\n\n"
                    "Black answers e4 with c5, fighting for the d4 square.\n", encoding="utf-8")
    return path


def write_damaged(path: Path) -> Path:
    """A PDF cut off after its header: what a failed download leaves."""
    path.write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n% truncated here")
    return path


def write_all(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "pdf": write_pdf(folder / "handbook.pdf"),
        "docx": write_docx(folder / "garden.docx"),
        "odt": write_odt(folder / "bicycle.odt"),
        "epub": write_epub(folder / "voyage.epub"),
        "markdown": write_markdown(folder / "kitchen.md"),
        "html": write_html(folder / "astronomy.html"),
        "rst": write_rst(folder / "chess.rst"),
        "scan": write_image_pdf(folder / "scan.pdf"),
        "damaged": write_damaged(folder / "broken.pdf"),
    }
    files["encrypted"] = write_encrypted_pdf(folder / "locked.pdf", files["pdf"])
    return files


def write_many_markdown(folder: Path, count: int) -> list[Path]:
    """`count` notes of a few paragraphs each, every one about its own numbered subject."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for n in range(count):
        paragraphs = [f"Note {n} records observation {n * 7 + k} of the survey at site {n}-{k}, where the team "
                      f"measured soil, water and air samples and wrote down what they saw in detail." for k in range(4)]
        path = folder / f"note-{n:03d}.md"
        path.write_text(f"# Survey note {n}\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
        written.append(path)
    return written
