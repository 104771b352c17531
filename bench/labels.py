"""Speed with many entity labels, against spaCy's own `ner`, in one process.

    python bench/labels.py [--labels 4 50 200 1000] [--updates 8] [--runs 3]

The CRF's transition matrix grows with the square of the number of tags (4
per label plus O in BILUO); spaCy's transition-based `ner` has as many
actions. For each label count both pipelines (configs/bilstm_crf.cfg and
spaCy's efficiency `ner`) get the labels, are initialized on 200 CoNLL-2003
training sentences whose entities are given labels drawn at random from them,
and are timed: seconds per update of 64 sentences (about 900 words, the
median of --updates), and words per second labelling 1,000 test sentences
through `nlp.pipe` (alternating runs, medians). Writes
bench/results/labels.json (with the command) and bench/RESULTS.md.
"""
import argparse
import datetime
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

from spacy.tokens import Span
from spacy.training import Example
from spacy.util import fix_random_seed, minibatch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import RESULTS, write_table  # noqa: E402
from speed import CONLL, ours_pipeline, sentences, spacy_ner_pipeline  # noqa: E402


def relabelled(docs, labels, seed=0):
    """Copies of docs whose entities carry labels drawn from `labels`."""
    rng = random.Random(seed)
    out = []
    for doc in docs:
        copy = doc.copy()
        copy.ents = [Span(copy, e.start, e.end, label=rng.choice(labels)) for e in doc.ents]
        out.append(copy)
    return out


def timed(nlp, name, labels, gold, texts, n_updates):
    pipe = nlp.get_pipe(name)
    for label in labels:
        pipe.add_label(label)
    examples = [Example(nlp.make_doc(d.text), d) for d in gold]
    optimizer = nlp.initialize(lambda: examples)
    seconds = []
    for _, batch in zip(range(n_updates), minibatch(examples * 4, size=64)):
        start = time.perf_counter()
        nlp.update(batch, sgd=optimizer)
        seconds.append(time.perf_counter() - start)
    list(nlp.pipe(texts[:100]))  # warm up
    return statistics.median(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, nargs="+", default=[4, 50, 200, 1000])
    parser.add_argument("--updates", type=int, default=8, help="timed updates of each pipeline (median)")
    parser.add_argument("--runs", type=int, default=3, help="timed nlp.pipe runs of each pipeline (alternating)")
    args = parser.parse_args()
    fix_random_seed(0)
    sample = sentences(CONLL / "train.txt", 200)
    texts = [d.text for d in sentences(CONLL / "test.txt", 1000)]
    rows = []
    for n_labels in args.labels:
        labels = [f"TYPE{i}" for i in range(n_labels)]
        gold = relabelled(sample, labels)
        pipelines = {"ours": (ours_pipeline(), "bilstm_crf_ner"), "spacy_ner": (spacy_ner_pipeline(), "ner")}
        row = {"labels": n_labels}
        for system, (nlp, name) in pipelines.items():
            row[f"{system}_update_s"] = round(timed(nlp, name, labels, gold, texts, args.updates), 3)
        n_words = sum(len(pipelines["ours"][0].make_doc(t)) for t in texts)
        times = {system: [] for system in pipelines}
        for _ in range(args.runs):
            for system, (nlp, _) in pipelines.items():
                start = time.perf_counter()
                for _ in nlp.pipe(texts, batch_size=256):
                    pass
                times[system].append(time.perf_counter() - start)
        for system in pipelines:
            row[f"{system}_wps"] = round(n_words / statistics.median(times[system]))
        row["predict_ratio"] = round(row["ours_wps"] / row["spacy_ner_wps"], 2)
        row["update_ratio"] = round(row["spacy_ner_update_s"] / row["ours_update_s"], 2)
        print(json.dumps(row), flush=True)
        rows.append(row)
    summary = "; ".join(f"{r['labels']} labels: predict {r['ours_wps']} vs {r['spacy_ner_wps']} w/s "
                        f"(ratio {r['predict_ratio']}), update {r['ours_update_s']} vs {r['spacy_ner_update_s']} s"
                        for r in rows)
    result = {
        "benchmark": "labels",
        "summary": "ours vs spaCy ner, " + summary,
        "rows": rows,
        "command": " ".join(["python bench/labels.py"] + sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "cores": os.cpu_count(),
        "torch_threads": __import__("torch").get_num_threads(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "labels.json").write_text(json.dumps(result, indent=2) + "\n")
    write_table()
    print(json.dumps({"summary": result["summary"], "command": result["command"]}))


if __name__ == "__main__":
    main()
