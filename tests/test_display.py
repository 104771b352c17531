"""The displaCy page renders in a real browser: headless Chromium (Debian's
`chromium`) takes a screenshot, and the entity colours are on it."""
import shutil
import subprocess

import pytest
import spacy

from spacy_bilstm_crf.visualize import label_colors, render_page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_page_renders_in_headless_chromium(tmp_path):
    nlp = spacy.blank("en")
    doc = nlp("Ada Lovelace met Charles Babbage in London.")
    doc.set_ents([doc.char_span(0, 12, "PER"), doc.char_span(17, 32, "PER"), doc.char_span(36, 42, "LOC")])
    page = tmp_path / "page.html"
    page.write_text(render_page([doc], ["PER", "LOC"]), encoding="utf-8")
    shot = tmp_path / "screenshot.png"
    common = FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([CHROMIUM, *common, f"--screenshot={shot}", "--window-size=1000,500", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    dom = subprocess.run([CHROMIUM, *common, "--dump-dom", page.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    assert dom.count('class="entity"') == 3 and "Charles Babbage" in dom
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    pixels = set(image.getdata())
    for label, colour in label_colors(["PER", "LOC"]).items():
        rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
        assert rgb in pixels, f"no {label} colour {colour} on the screenshot"


def test_titles_are_text_not_markup():
    """Ids and names become titles; displaCy writes them as they are, so a
    '<' in one must not open a tag on the page."""
    nlp = spacy.blank("en")
    docs = [nlp("Ada"), nlp("Bob"), nlp("Cy")]
    docs[0].user_data["title"] = "<img src=x onerror=alert(1)>"
    docs[1].user_data["brat"] = {"name": "a&b"}
    page = render_page(docs, ["PER"], title="<script>x</script>")
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "a&amp;b" in page and "Document 3" in page
    assert "<script>x" not in page and "<title>&lt;script&gt;x&lt;/script&gt;</title>" in page
