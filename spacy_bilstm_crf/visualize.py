"""displaCy pages of predicted entities, one colour per label."""
from pathlib import Path
from typing import Dict, Iterable, List

from spacy import displacy
from spacy.tokens import Doc

# distinct, readable on white; cycled when a model has more labels
PALETTE = ["#7aecec", "#feca74", "#aa9cfc", "#ff9561", "#bfeeb7", "#ff8197", "#9cc9cc", "#e4e7d2",
           "#c887fb", "#ffeb80", "#f0d0ff", "#bfe1d9", "#d9fe74", "#ddd", "#ffb6c1", "#87cefa"]


def label_colors(labels: Iterable[str]) -> Dict[str, str]:
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(sorted(set(labels)))}


def render_page(docs: List[Doc], labels: Iterable[str], title: str = "Predicted entities") -> str:
    """A standalone HTML page showing each doc's entities."""
    for i, doc in enumerate(docs):
        doc.user_data.setdefault("title", doc.user_data.get("brat", {}).get("name") or f"Document {i + 1}")
    options = {"colors": label_colors(labels), "ents": sorted(set(labels)) or None}
    html = displacy.render(docs, style="ent", page=True, options=options, jupyter=False)
    return html.replace("<title>displaCy</title>", f"<title>{title}</title>", 1)


def write_page(path: Path, docs: List[Doc], labels: Iterable[str], title: str = "Predicted entities") -> None:
    """render_page written to path (its folder made if need be), in UTF-8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(docs, labels, title=title), encoding="utf-8")
