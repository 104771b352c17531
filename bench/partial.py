"""Learning from partial annotation, on CoNLL-2003 (no pretrained vectors).

    python bench/partial.py [--hide 0.5] [--max-steps 3000] [--seed 0]

Three trainings with the same config and budget, early-stopped on the full dev
set, scored on the test set:
  full         every token's label given
  missing      a random `--hide` share of the training tokens have no label
               (and the rest of an entity after a hidden token, as spaCy's
               annotation cannot continue an entity after a missing token);
               the CRF loss sums over every tag sequence consistent with the
               rest (spaCy's "missing" entity annotation)
  as_o         the same tokens labelled O instead (what a reader that knows
               no "missing" does); entity pieces left around them are kept
Writes bench/results/partial_annotation.json and the RESULTS.md table.
"""
import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy
import spacy
from spacy.attrs import ENT_IOB, ENT_TYPE
from spacy.tokens import DocBin

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import DATA, GOLD_SENTENCES, RESULTS, ROOT, WORK, convert, run, write_table  # noqa: E402

B, I, O, MISSING = 3, 1, 2, 0  # spaCy's ent_iob codes


def hide(docs, share: float, as_o: bool, seed: int):
    """Copies of the docs with a random share of the tokens' labels removed
    (missing) or replaced by O (with I after a hidden token made B)."""
    rng = numpy.random.default_rng(seed)
    out = []
    for doc in docs:
        iob, types = doc.to_array([ENT_IOB, ENT_TYPE]).astype(numpy.uint64).T
        hidden = rng.random(len(doc)) < share
        for i in range(1, len(doc)):  # spaCy has no "I" after a missing token: hide the entity's rest too
            hidden[i] |= hidden[i - 1] and iob[i] == I
        iob = iob.copy()
        types = types.copy()
        iob[hidden] = O if as_o else MISSING
        types[hidden] = 0
        if as_o:
            prev_out = numpy.concatenate([[True], (iob[:-1] == O) | (types[:-1] != types[1:])]) if len(doc) else []
            iob[(iob == I) & prev_out] = B
        copy = doc.copy()
        copy.from_array([ENT_IOB, ENT_TYPE], numpy.stack([iob, types], axis=1))
        out.append(copy)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hide", type=float, default=0.5)
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--patience", type=int, default=1200)
    parser.add_argument("--eval-frequency", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["full", "missing", "as_o"], action="append")
    args = parser.parse_args()
    work = WORK / "partial"
    corpus = work / "corpus"
    for split in ("train", "valid", "test"):
        convert(DATA / "conll2003" / f"{split}.txt", corpus / f"{split}.spacy")
    nlp = spacy.blank("en")
    train = list(DocBin().from_disk(corpus / "train.spacy").get_docs(nlp.vocab))
    n_tokens = sum(len(d) for d in train)
    variants = {"full": train, "missing": hide(train, args.hide, False, args.seed),
                "as_o": hide(train, args.hide, True, args.seed)}
    out_path = RESULTS / "partial_annotation.json"
    result = json.loads(out_path.read_text()) if out_path.exists() and args.only else {"variants": {}}
    for name in args.only or variants:
        docs = variants[name]
        path = corpus / f"train_{name}.spacy"
        DocBin(docs=docs, store_user_data=True).to_disk(path)
        labelled = sum(int((d.to_array(ENT_IOB) != MISSING).sum()) for d in docs)
        start = time.time()
        run("-m", "spacy", "train", ROOT / "configs" / "bilstm_crf.cfg", "--output", work / name,
            "--paths.train", path, "--paths.dev", corpus / "valid.spacy",
            "--training.max_steps", args.max_steps, "--training.patience", args.patience,
            "--training.eval_frequency", args.eval_frequency, "--system.seed", args.seed, *GOLD_SENTENCES)
        seconds = time.time() - start
        scores_path = work / f"{name}_test.json"
        run("-m", "spacy_bilstm_crf", "evaluate", work / name / "model-best", corpus / "test.spacy",
            "--output", scores_path)
        scores = json.loads(scores_path.read_text())
        meta = json.loads((work / name / "model-best" / "meta.json").read_text())
        result["variants"][name] = {
            "test_ents_f": scores["ents_f"], "test_ents_p": scores["ents_p"], "test_ents_r": scores["ents_r"],
            "dev_ents_f": meta["performance"].get("ents_f"), "labelled_tokens": labelled / n_tokens,
            "train_seconds": round(seconds),
        }
    v = result["variants"]
    result.update({
        "benchmark": "partial_annotation", "hidden_share": args.hide, "max_steps": args.max_steps,
        "summary": "test F1 (CoNLL-2003, no vectors, {}% of training tokens hidden): ".format(round(100 * args.hide))
                   + ", ".join(f"{k} {100 * v[k]['test_ents_f']:.2f}" for k in ("full", "missing", "as_o") if k in v),
        "command": "python bench/partial.py " + " ".join(sys.argv[1:]),
        "date": datetime.date.today().isoformat(), "cores": os.cpu_count(),
    })
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    write_table()
    print(result["summary"])


if __name__ == "__main__":
    main()
