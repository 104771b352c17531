"""displaCy pages of predicted entities, one colour per label, and the check
that `serve` can listen where it is asked to."""
import html
import warnings
from pathlib import Path
from typing import Dict, Iterable, List

from spacy import displacy
from spacy.tokens import Doc

from .errors import FormatError

# distinct, readable on white; cycled when a model has more labels
PALETTE = ["#7aecec", "#feca74", "#aa9cfc", "#ff9561", "#bfeeb7", "#ff8197", "#9cc9cc", "#e4e7d2",
           "#c887fb", "#ffeb80", "#f0d0ff", "#bfe1d9", "#d9fe74", "#ddd", "#ffb6c1", "#87cefa"]


def label_colors(labels: Iterable[str]) -> Dict[str, str]:
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(sorted(set(labels)))}


def titled(docs: List[Doc]) -> List[Doc]:
    """The docs, each with the title displaCy shows over it, made safe for
    HTML (displaCy writes titles as they are): its "title" (an id), its BRAT
    name or its number. Call it once on docs."""
    for i, doc in enumerate(docs):
        name = doc.user_data.get("title") or doc.user_data.get("brat", {}).get("name") or f"Document {i + 1}"
        doc.user_data["title"] = html.escape(str(name))
    return docs


def quiet_about_docs_without_entities() -> None:
    """Silence spaCy's W006 ("No entities to visualize"): a doc the model
    found nothing in is shown as it is, which is an answer, not a problem."""
    warnings.filterwarnings("ignore", message=r"\[W006\]")


def render_page(docs: List[Doc], labels: Iterable[str], title: str = "Predicted entities") -> str:
    """A standalone HTML page showing each doc's entities."""
    options = {"colors": label_colors(labels), "ents": sorted(set(labels)) or None}
    with warnings.catch_warnings():
        quiet_about_docs_without_entities()
        page = displacy.render(titled(docs), style="ent", page=True, options=options, jupyter=False)
    return page.replace("<title>displaCy</title>", f"<title>{html.escape(title)}</title>", 1)


def write_page(path: Path, docs: List[Doc], labels: Iterable[str], title: str = "Predicted entities") -> None:
    """render_page written to path (its folder made if need be), in UTF-8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(docs, labels, title=title), encoding="utf-8")


def check_address(host: str, port: int) -> None:
    """A FormatError if the server could not listen on host:port."""
    import socket

    where = f"--host {host} --port {port}"
    try:  # displaCy's server (wsgiref) listens on IPv4 only
        family, kind, proto, _, address = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0]
    except (socket.gaierror, OverflowError, UnicodeError) as err:
        raise FormatError(where, None, f"not an IPv4 address to serve on ({err}): pass --host (e.g. 127.0.0.1 "
                                       "or 0.0.0.0) and a --port from 1 to 65535.") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            raise FormatError(where, None, f"cannot serve there ({err.strerror}): pass another --port, or a "
                                           "--host of this machine.") from None
