"""Evaluation reports a person can look at: per-type scores (entity-level
exact match, as conlleval), an entity confusion matrix and the learning curve
of a training run, as JSON and PNG."""
import json
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from spacy.training import Example

from .errors import FormatError, decode

NONE = "(none)"  # no entity with that exact span on the other side


def confusion(examples: Iterable[Example]) -> Dict[str, Dict[str, int]]:
    """counts[gold][predicted] over entities matched by exact character span;
    NONE stands for a missed (gold only) or spurious (predicted only) entity."""
    counts: Counter = Counter()
    for eg in examples:
        gold = {(e.start_char, e.end_char): e.label_ for e in eg.reference.ents}
        pred = {(e.start_char, e.end_char): e.label_ for e in eg.predicted.ents}
        for span in gold.keys() | pred.keys():
            counts[gold.get(span, NONE), pred.get(span, NONE)] += 1
    labels = sorted(({g for g, _ in counts} | {p for _, p in counts}) - {NONE}) + [NONE]
    return {g: {p: counts[g, p] for p in labels} for g in labels}


def report_table(scores: Dict) -> str:
    """Per-type precision, recall and F1 as an aligned text table."""
    rows = [("", "P", "R", "F", "")]
    for label, prf in sorted((scores.get("ents_per_type") or {}).items()):
        rows.append((label, *(f"{100 * prf[k]:.2f}" for k in "prf"), ""))
    rows.append(("ALL", *(f"{100 * (scores.get(f'ents_{k}') or 0):.2f}" for k in "prf"), "micro"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{r[0]:<{width}}  {r[1]:>7} {r[2]:>7} {r[3]:>7}  {r[4]}".rstrip() for r in rows)


def plot_confusion(matrix: Dict[str, Dict[str, int]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy

    labels = list(matrix)
    data = numpy.array([[matrix[g][p] for p in labels] for g in labels], dtype=float)
    size = 1.2 + 0.7 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    shown = data / numpy.maximum(data.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if data[i, j]:
                ax.text(j, i, f"{int(data[i, j])}", ha="center", va="center",
                        color="white" if shown[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("Entities by exact span\n(counts; colour: share of the gold row)", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def read_training_log(path: Path) -> List[Dict]:
    """The evaluation steps spaCy's ConsoleLogger.v3 wrote (output_file);
    its scores are percentages. A missing or unreadable file is a FormatError
    naming it (and the line)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, None, "no such training log (the output_file of [training.logger], "
                                      "spacy.ConsoleLogger.v3).")
    rows = []
    for n, line in enumerate(decode(path.read_bytes(), path, "utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise FormatError(path, n, "not a JSON line: a training log holds one JSON object per evaluation "
                                       "(spacy.ConsoleLogger.v3's output_file).") from None
        if isinstance(row, dict) and "step" in row and isinstance(row.get("scores"), dict):
            rows.append(row)
    return rows


def plot_learning_curve(rows: List[Dict], path: Path, score: str = "ents_f") -> Optional[Path]:
    """Dev score and training loss against the training step."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["scores"].get(score) or 0 for r in rows], "o-", color="tab:blue", label=f"dev {score}")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"dev {score} (%)", color="tab:blue")
    best = max(rows, key=lambda r: r["scores"].get(score) or 0)
    top = best["scores"].get(score) or 0
    ax.annotate(f"best {top:.2f} (step {best['step']})", (best["step"], top),
                textcoords="offset points", xytext=(0, 8), ha="center")
    losses = ax.twinx()
    for name in rows[0].get("losses", {}):
        losses.plot(steps, [r["losses"][name] for r in rows], "--", color="tab:red", label=f"loss {name}")
    losses.set_ylabel("training loss", color="tab:red")
    losses.set_yscale("log")
    ax.set_ylim(bottom=max(0.0, min(r["scores"].get(score) or 0 for r in rows[1:] or rows) - 10),
                top=min(101.0, ax.get_ylim()[1]))  # room for the label, not past 100%
    ax.set_title("Learning curve")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
