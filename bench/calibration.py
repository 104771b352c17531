"""Calibration of the entity probabilities, on CoNLL-2003 dev.

    python bench/calibration.py [--model PATH] [--alternatives 0.05] [--bins 10]

Labels the dev sentences with a trained pipeline (by default the model of
`bench/accuracy.py conll2003_novectors`), takes every entity in
doc.spans["bilstm_crf_ner"] with its probability (the decoded entities, and
with --alternatives also every other span at or above that probability), and
checks how often an entity of probability p is right: a reliability diagram
(bench/results/calibration.png) and the expected calibration error
ECE = sum over bins of (bin share) * |accuracy - mean probability|.
"""
import argparse
import datetime
import json
import os
import sys
from pathlib import Path

import numpy
import spacy
from spacy.tokens import Doc, DocBin

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import DATA, RESULTS, WORK, convert, write_table  # noqa: E402


def reliability(scores: numpy.ndarray, correct: numpy.ndarray, n_bins: int):
    edges = numpy.linspace(0.0, 1.0, n_bins + 1)
    which = numpy.clip(numpy.digitize(scores, edges[1:-1]), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        mask = which == b
        n = int(mask.sum())
        mean = float(scores[mask].mean()) if n else None
        acc = float(correct[mask].mean()) if n else None
        if n:
            ece += n / len(scores) * abs(acc - mean)
        bins.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": n, "mean_probability": mean,
                     "accuracy": acc})
    return bins, ece


def plot(series, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for (name, bins, ece), marker in zip(series, "os"):
        shown = [b for b in bins if b["n"] >= 5]  # a point from one or two entities says nothing
        top.plot([b["mean_probability"] for b in shown], [b["accuracy"] for b in shown], marker=marker,
                 label=f"{name} (ECE {100 * ece:.2f})")
        bottom.bar([(b["low"] + b["high"]) / 2 for b in bins], [b["n"] for b in bins], width=0.9 / len(bins),
                   alpha=0.6, label=name)
    top.set_ylabel("share of entities that are correct")
    top.set_title("Reliability of entity probabilities (CoNLL-2003 dev)")
    top.legend(loc="upper left")
    bottom.set_yscale("log")
    bottom.set_xlabel("predicted probability of the entity")
    bottom.set_ylabel("entities")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=WORK / "conll2003_novectors" / "training" / "model-best")
    parser.add_argument("--alternatives", type=float, default=None)
    parser.add_argument("--bins", type=int, default=10)
    args = parser.parse_args()
    if not args.model.exists():
        sys.exit(f"{args.model} not found: train it first with `python bench/accuracy.py conll2003_novectors`")
    dev = convert(DATA / "conll2003" / "valid.txt", WORK / "calibration" / "valid.spacy")
    # each dev doc is one gold sentence and one BiLSTM sequence, as in bench/accuracy.py's GOLD_SENTENCES
    nlp = spacy.load(args.model, exclude=["sentencizer"], config={"components": {"bilstm_crf_ner": {
        "spans_key": "bilstm_crf_ner", "alternatives_threshold": args.alternatives}}})
    ner = nlp.get_pipe("bilstm_crf_ner")
    ner.cfg.update(spans_key="bilstm_crf_ner", alternatives_threshold=args.alternatives)  # over the saved cfg
    gold = list(DocBin().from_disk(dev).get_docs(nlp.vocab))
    inputs = [Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in gold]
    decoded, alternatives = ([], []), ([], [])
    for ref, doc in zip(gold, nlp.pipe(inputs)):
        truth = {(e.start, e.end, e.label_) for e in ref.ents}
        ents = {(e.start, e.end, e.label_) for e in doc.ents}
        group = doc.spans["bilstm_crf_ner"]
        for span, score in zip(group, group.attrs["scores"]):
            key = (span.start, span.end, span.label_)
            target = decoded if key in ents else alternatives
            target[0].append(float(score))
            target[1].append(key in truth)
    series, result = [], {}
    sets = [("decoded entities", decoded)]
    if args.alternatives is not None:
        sets.append((f"all spans with p >= {args.alternatives}", (decoded[0] + alternatives[0],
                                                                   decoded[1] + alternatives[1])))
    for name, (scores, correct) in sets:
        scores, correct = numpy.array(scores), numpy.array(correct, dtype=float)
        bins, ece = reliability(scores, correct, args.bins)
        series.append((name, bins, ece))
        result[name] = {"n": len(scores), "ece": ece, "accuracy": float(correct.mean()),
                        "mean_probability": float(scores.mean()), "bins": bins}
    png = RESULTS / "calibration.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(series, png)
    first = result["decoded entities"]
    out = {
        "benchmark": "calibration", "model": str(args.model), "results": result, "plot": str(png.relative_to(RESULTS.parents[1])),
        "summary": f"decoded entities on CoNLL-2003 dev: ECE {100 * first['ece']:.2f} "
                   f"(n={first['n']}, mean p {first['mean_probability']:.3f}, accuracy {first['accuracy']:.3f})"
                   + "".join(f"; {k}: ECE {100 * v['ece']:.2f} (n={v['n']})" for k, v in list(result.items())[1:]),
        "command": "python bench/calibration.py " + " ".join(sys.argv[1:]),
        "date": datetime.date.today().isoformat(), "cores": os.cpu_count(),
    }
    (RESULTS / "calibration.json").write_text(json.dumps(out, indent=2) + "\n")
    write_table()
    print(out["summary"])


if __name__ == "__main__":
    main()
