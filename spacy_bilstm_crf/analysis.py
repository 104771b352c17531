"""Error analysis of predicted entities against gold ones, in the categories
of Lyu et al. (2017): every error is a false positive (a predicted entity that
is not in the gold) or a false negative (a gold entity not predicted), and each
is one of

    type           the same span as an entity on the other side, another label
    boundary       overlaps an entity on the other side with the same label
    boundary_type  overlaps only entities on the other side with other labels
    spurious       (false positive) overlaps no gold entity
    missed         (false negative) overlaps no predicted entity

Entities are compared by character offsets, so gold and predictions may be
tokenized differently. Also the type-agnostic ("binary") scores: a span counts
as correct when some entity has exactly that span, whatever its label.
"""
from collections import Counter, defaultdict
from typing import Dict, Iterable, List, Tuple

from spacy.training import Example

FP_CATEGORIES = ("type", "boundary", "boundary_type", "spurious")
FN_CATEGORIES = ("type", "boundary", "boundary_type", "missed")
CONTEXT = 40  # characters of text shown on each side of an example

Entity = Tuple[int, int, str]


def _category(entity: Entity, others: List[Entity], none: str) -> str:
    start, end, label = entity
    overlapping = [o for o in others if o[0] < end and start < o[1]]
    if any(o[0] == start and o[1] == end for o in overlapping):
        return "type"
    if any(o[2] == label for o in overlapping):
        return "boundary"
    return "boundary_type" if overlapping else none


def _prf(tp: int, n_pred: int, n_gold: int) -> Dict[str, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return {"p": p, "r": r, "f": 2 * p * r / (p + r) if p + r else 0.0}


def _example(text: str, doc_index: int, entity: Entity, others: List[Entity]) -> Dict:
    start, end, label = entity
    lo, hi = max(0, start - CONTEXT), min(len(text), end + CONTEXT)
    near = [{"start": s, "end": e, "label": lab, "text": text[s:e]} for s, e, lab in others if s < hi and lo < e]
    return {"doc": doc_index, "start": start, "end": end, "label": label, "text": text[start:end],
            "context": text[lo:start] + "[[" + text[start:end] + "]]" + text[end:hi], "other_side": near}


def error_analysis(examples: Iterable[Example], n_examples: int = 5) -> Dict:
    """Counts per category (overall and per label: false positives under the
    predicted label, false negatives under the gold label), typed and binary
    P/R/F, and up to `n_examples` examples of each category."""
    fp: Dict[str, Counter] = defaultdict(Counter)
    fn: Dict[str, Counter] = defaultdict(Counter)
    correct: Counter = Counter()
    n_gold: Counter = Counter()
    n_pred: Counter = Counter()
    binary_tp = 0
    examples_of: Dict[str, List[Dict]] = {f"fp_{c}": [] for c in FP_CATEGORIES}
    examples_of.update({f"fn_{c}": [] for c in FN_CATEGORIES})
    for i, eg in enumerate(examples):
        gold = sorted({(e.start_char, e.end_char, e.label_) for e in eg.reference.ents})
        pred = sorted({(e.start_char, e.end_char, e.label_) for e in eg.predicted.ents})
        text = eg.reference.text
        binary_tp += len({g[:2] for g in gold} & {p[:2] for p in pred})
        gold_set, pred_set = set(gold), set(pred)
        for side, entities, others, counts, none in (("fp", pred, gold, fp, "spurious"),
                                                    ("fn", gold, pred, fn, "missed")):
            for entity in entities:
                (n_pred if side == "fp" else n_gold)[entity[2]] += 1
                if entity in (gold_set if side == "fp" else pred_set):
                    if side == "fp":
                        correct[entity[2]] += 1
                    continue
                category = _category(entity, others, none)
                counts[entity[2]][category] += 1
                shown = examples_of[f"{side}_{category}"]
                if len(shown) < n_examples:
                    shown.append(_example(text, i, entity, others))
    labels = sorted(set(n_gold) | set(n_pred))
    per_type = {
        label: {
            "gold": n_gold[label], "predicted": n_pred[label], "correct": correct[label],
            **_prf(correct[label], n_pred[label], n_gold[label]),
            "false_positives": {c: fp[label][c] for c in FP_CATEGORIES},
            "false_negatives": {c: fn[label][c] for c in FN_CATEGORIES},
        }
        for label in labels
    }
    total_gold, total_pred, total_correct = sum(n_gold.values()), sum(n_pred.values()), sum(correct.values())
    return {
        "typed": {"gold": total_gold, "predicted": total_pred, "correct": total_correct,
                  **_prf(total_correct, total_pred, total_gold)},
        "binary": {"correct": binary_tp, **_prf(binary_tp, total_pred, total_gold)},
        "false_positives": {c: sum(fp[label][c] for label in labels) for c in FP_CATEGORIES},
        "false_negatives": {c: sum(fn[label][c] for label in labels) for c in FN_CATEGORIES},
        "per_type": per_type,
        "examples": examples_of,
    }


def analysis_table(result: Dict) -> str:
    """The counts as an aligned text table, then typed and binary scores."""
    head = ("label", "gold", "pred", "ok", "F", "FP:type", "bound", "b+type", "spur",
            "FN:type", "bound", "b+type", "missed")
    rows = [head]

    def row(name, counts, fps, fns):
        return (name, str(counts["gold"]), str(counts["predicted"]), str(counts["correct"]),
                f"{100 * counts['f']:.2f}", *(str(fps[c]) for c in FP_CATEGORIES),
                *(str(fns[c]) for c in FN_CATEGORIES))

    for label, counts in result["per_type"].items():
        rows.append(row(label, counts, counts["false_positives"], counts["false_negatives"]))
    rows.append(row("ALL", result["typed"], result["false_positives"], result["false_negatives"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    binary = result["binary"]
    lines.append("")
    lines.append(f"binary (type-agnostic) P {100 * binary['p']:.2f}  R {100 * binary['r']:.2f}  "
                 f"F {100 * binary['f']:.2f}   typed F {100 * result['typed']['f']:.2f}")
    return "\n".join(lines)
