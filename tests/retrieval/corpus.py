"""A generated document set for retrieval tests (and the route engineer's openai-client test): a plant's manuals
as an md, an html, a pdf and a docx file, each a few thousand tokens of procedure text with facts about its
machines (torques, intervals, speeds, fuses, ...), and 20 held-out questions, each with the answer and the file
whose chunk holds it. Deterministic (seeded); no library beyond python-docx (the PDF is written by hand).

    docs = documents()                  # [Doc(filename, data, facts)]
    qs = questions(docs)                # 20 x Question(text, answer, filename, sentence)
    answers(qs[0], chunk_text)          # does this chunk hold the answer's sentence?
"""

from __future__ import annotations

import html
import io
import random
import re
from dataclasses import dataclass, field

SEED = 26
MACHINES = [
    ("K-17", "lathe"), ("M-204", "hydraulic press"), ("T-88", "conveyor"), ("R-5", "robot welder"),
    ("B-310", "band saw"), ("C-42", "CNC mill"), ("P-9", "paint booth"), ("G-71", "surface grinder"),
    ("H-12", "heat-treatment furnace"), ("D-56", "drill press"), ("L-33", "laser cutter"), ("W-64", "wire EDM"),
]
PROPERTIES = [  # (phrase in the manual, question about it, value maker)
    ("clamp bolt torque", "What torque do the clamp bolts of the {m} take?", lambda r: f"{r.randint(18, 95)} N·m"),
    ("lubrication interval", "How often must the {m} be lubricated?", lambda r: f"every {r.randint(12, 400)} hours"),
    ("maximum spindle speed", "What is the highest spindle speed allowed on the {m}?",
     lambda r: f"{r.randint(8, 60) * 100} rpm"),
    ("main fuse rating", "Which fuse rating protects the main circuit of the {m}?", lambda r: f"{r.randint(6, 63)} A"),
    ("coolant concentration", "What coolant concentration should the {m} run with?",
     lambda r: f"{r.randint(30, 120) / 10} percent"),
    ("hydraulic oil grade", "Which hydraulic oil grade goes into the {m}?",
     lambda r: f"ISO VG {r.choice([22, 32, 46, 68])}-{r.randint(100, 999)}"),
    ("filter replacement code", "Which part number is the replacement filter of the {m}?",
     lambda r: f"part FX-{r.randint(1000, 9999)}"),
    ("warm-up time", "How long must the {m} warm up before production?", lambda r: f"{r.randint(4, 45)} minutes"),
]
FILLER = [
    "Before any maintenance, lock out the main isolator, attach your personal padlock and verify zero energy.",
    "Operators must wear safety glasses, hearing protection and steel-toe boots in the production hall.",
    "Record every intervention in the maintenance log with the date, the shift and the technician's initials.",
    "If an alarm persists after a reset, stop the line and call the shift supervisor on extension 2140.",
    "Clean the work area at the end of each shift and dispose of swarf in the marked metal bins.",
    "Spare parts are issued by the stores against a signed work order; urgent requests go through the planner.",
    "Check the emergency stop buttons weekly and note the result on the inspection card beside the machine.",
    "New staff work under supervision for their first ten shifts and complete the induction checklist.",
    "Keep gangways clear; pallets may not be left within one metre of a machine guard.",
    "Report near misses the same day; the safety committee reviews them every Thursday morning.",
    "Calibration certificates are kept in the quality office and renewed before their expiry date.",
    "Chemicals are stored in the ventilated cabinet and their safety data sheets hang on its door.",
]


@dataclass(frozen=True)
class Fact:
    machine: str  # "K-17 lathe"
    prop: str
    value: str
    question: str

    @property
    def sentence(self) -> str:
        return f"The {self.prop} of the {self.machine} is {self.value}."


@dataclass(frozen=True)
class Doc:
    filename: str
    data: bytes
    facts: list[Fact] = field(default_factory=list)


@dataclass(frozen=True)
class Question:
    text: str
    answer: str
    filename: str
    sentence: str


def _facts(rng: random.Random) -> list[Fact]:
    facts, seen = [], set()
    for code, kind in MACHINES:
        for prop, question, value in PROPERTIES:
            made = value(rng)
            while made in seen:
                made = value(rng)
            seen.add(made)
            machine = f"{code} {kind}"
            facts.append(Fact(machine, prop, made, question.format(m=machine)))
    return facts


def _sections(rng: random.Random, facts: list[Fact]) -> list[tuple[str, list[str]]]:
    """(heading, paragraphs) per machine: the facts among filler sentences."""
    sections = []
    for machine in dict.fromkeys(f.machine for f in facts):
        mine = [f.sentence for f in facts if f.machine == machine]
        paragraphs = []
        for sentence in mine:
            fill = rng.sample(FILLER, 4)
            paragraphs.append(" ".join([*fill[:2], sentence, *fill[2:]]))
        sections.append((f"{machine}: operation and maintenance", paragraphs))
    return sections


def _markdown(title: str, sections: list[tuple[str, list[str]]]) -> bytes:
    parts = [f"# {title}", ""]
    for heading, paragraphs in sections:
        parts += [f"## {heading}", "", *[p + "\n" for p in paragraphs]]
    return "\n".join(parts).encode()


def _html(title: str, sections: list[tuple[str, list[str]]]) -> bytes:
    body = [f"<h1>{html.escape(title)}</h1>", "<nav><a href='#'>Home</a> | <a href='#'>Manuals</a></nav>"]
    for heading, paragraphs in sections:
        body.append(f"<section><h2>{html.escape(heading)}</h2>")
        body += [f"<p>{html.escape(p)}</p>" for p in paragraphs[:-1]]
        body.append(f"<ul><li>{html.escape(paragraphs[-1])}</li></ul></section>")
    body.append("<table><tr><th>Shift</th><th>Hours</th></tr><tr><td>Early</td><td>06-14</td></tr></table>")
    page = (f"<!doctype html><html><head><title>{html.escape(title)}</title><style>p {{margin: 0}}</style>"
            f"<script>var tracking = 'ignore me';</script></head><body>{''.join(body)}</body></html>")
    return page.encode()


def _wrap(text: str, width: int = 90) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def pdf_bytes(lines: list[str], per_page: int = 60) -> bytes:
    """A plain PDF (Helvetica, one text line per row) written by hand: what pypdf reads back as text."""
    pages = [lines[i:i + per_page] for i in range(0, len(lines), per_page)] or [[]]
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", "", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
               "/Encoding /WinAnsiEncoding >>"]
    kids = []
    for page in pages:
        ops = ["BT", "/F1 10 Tf", "12 TL", "50 780 Td"]
        for line in page:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("cp1252")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode('cp1252')}\nendstream")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Contents {len(objects)} 0 R "
                       "/Resources << /Font << /F1 3 0 R >> >> >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = io.BytesIO(), []
    out.write(b"%PDF-1.4\n")
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n{body}\nendobj\n".encode("cp1252"))
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def _pdf(title: str, sections: list[tuple[str, list[str]]]) -> bytes:
    lines = [title, ""]
    for heading, paragraphs in sections:
        lines += [heading, ""]
        for paragraph in paragraphs:
            lines += [*_wrap(paragraph), ""]
    return pdf_bytes(lines)


def docx_bytes(title: str, sections: list[tuple[str, list[str]]]) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for heading, paragraphs in sections:
        document.add_heading(heading, level=2)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    table = document.add_table(rows=2, cols=2)
    for (r, c), text in {(0, 0): "Shift", (0, 1): "Hours", (1, 0): "Early", (1, 1): "06-14"}.items():
        table.cell(r, c).text = text
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def documents(seed: int = SEED, with_docx: bool = False) -> list[Doc]:
    """The md, html and pdf manuals (and a docx one with `with_docx`), four machines each."""
    rng = random.Random(seed)
    facts = _facts(rng)
    writers = [("line-a-manual.md", _markdown), ("line-b-manual.html", _html), ("line-c-manual.pdf", _pdf)]
    if with_docx:
        writers.append(("line-d-manual.docx", docx_bytes))
    per_doc = len(MACHINES) // len(writers)
    docs = []
    for i, (filename, writer) in enumerate(writers):
        machines = [f"{c} {k}" for c, k in MACHINES[i * per_doc:(i + 1) * per_doc]]
        mine = [f for f in facts if f.machine in machines]
        title = f"Plant manual, line {chr(ord('A') + i)}"
        docs.append(Doc(filename, writer(title, _sections(rng, mine)), mine))
    return docs


def questions(docs: list[Doc], count: int = 20, seed: int = SEED) -> list[Question]:
    """`count` held-out questions, spread over the documents, each with its answer and file."""
    rng = random.Random(seed + 1)
    pool = [(d, f) for d in docs for f in d.facts]
    picked = rng.sample(pool, count)
    return [Question(f.question, f.value, d.filename, f.sentence) for d, f in picked]


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def answers(question: Question, chunk: str) -> bool:
    """Whether a retrieved chunk holds the question's answer sentence (whitespace and case aside)."""
    return _flat(question.sentence) in _flat(chunk)
