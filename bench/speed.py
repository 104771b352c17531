"""Inference speed of our pipeline against spaCy's own `ner`, in one process.

    python bench/speed.py --quick                # pipelines initialized on a small sample
    python bench/speed.py --ours PATH --spacy-ner PATH [--train-epoch]

Both pipelines label the 3,453 CoNLL-2003 test sentences as raw text through
`nlp.pipe`, in alternating runs; the medians are reported. Speed does not
depend on training, so --quick initializes both on 200 training sentences (a
few updates, so both predict entities). The last line printed is JSON; the
result also goes to bench/results/speed.json with the command that produced it.
"""
import argparse
import datetime
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import spacy
from spacy.cli.init_config import init_config
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import fix_random_seed, load_model_from_config, minibatch

ROOT = Path(__file__).resolve().parents[1]
CONLL = ROOT.parent / "shared" / "datasets" / "conll2003"
OURS_CONFIG = ROOT / "configs" / "bilstm_crf.cfg"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from spacy_bilstm_crf.formats.conll import read_conll  # noqa: E402


def sentences(path, n=None):
    vocab = spacy.blank("en").vocab
    docs = read_conll(path, vocab, n_sents=1)
    return docs[:n] if n else docs


def ours_pipeline(config_path=OURS_CONFIG):
    config = spacy.util.load_config(config_path)
    return load_model_from_config(config, auto_fill=True, validate=True)


def spacy_ner_pipeline():
    config = init_config(lang="en", pipeline=["ner"], optimize="efficiency", gpu=False)
    return load_model_from_config(config, auto_fill=True, validate=True)


def quick_train(nlp, gold, steps=20):
    examples = [Example(nlp.make_doc(d.text), d) for d in gold]
    optimizer = nlp.initialize(lambda: examples)
    for _, batch in zip(range(steps), minibatch(examples * 10, size=32)):
        nlp.update(batch, sgd=optimizer)
    return nlp


def time_epoch(nlp, train_docs):
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in d]), d) for d in train_docs]
    optimizer = nlp.resume_training()
    start = time.perf_counter()
    for batch in minibatch(examples, size=64):  # about 1,000 words a batch
        nlp.update(batch, sgd=optimizer, drop=0.5)
    return time.perf_counter() - start


def disk_size(nlp, name):
    with tempfile.TemporaryDirectory() as tmp:
        nlp.get_pipe(name).to_disk(Path(tmp) / name)
        return sum(p.stat().st_size for p in (Path(tmp) / name).rglob("*") if p.is_file())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="initialize both pipelines on a small sample")
    parser.add_argument("--ours", help="a trained pipeline with bilstm_crf_ner")
    parser.add_argument("--config", default=str(OURS_CONFIG),
                        help="with --quick: the config of our pipeline (to compare configs)")
    parser.add_argument("--spacy-ner", help="a trained spaCy ner pipeline")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each pipeline (alternating)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--train-epoch", action="store_true", help="also time one CoNLL-2003 training epoch of each")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "speed.json"))
    args = parser.parse_args()
    fix_random_seed(0)
    test = sentences(CONLL / "test.txt")
    texts = [d.text for d in test]
    if args.quick or not (args.ours and args.spacy_ner):
        sample = sentences(CONLL / "train.txt", 200)
        ours, theirs = quick_train(ours_pipeline(args.config), sample), quick_train(spacy_ner_pipeline(), sample)
    else:
        ours, theirs = spacy.load(args.ours), spacy.load(args.spacy_ner)
    n_words = sum(len(ours.make_doc(t)) for t in texts)
    for nlp in (ours, theirs):  # warm up both
        list(nlp.pipe(texts[:200]))
    times = {"ours": [], "spacy_ner": []}
    for _ in range(args.runs):
        for name, nlp in (("ours", ours), ("spacy_ner", theirs)):
            start = time.perf_counter()
            for _ in nlp.pipe(texts, batch_size=args.batch_size):
                pass
            times[name].append(time.perf_counter() - start)
    result = {
        "ours_wps": round(n_words / statistics.median(times["ours"])),
        "spacy_ner_wps": round(n_words / statistics.median(times["spacy_ner"])),
        "words": n_words,
        "runs": args.runs,
        "seconds": times,
        "ours_model_bytes": disk_size(ours, "bilstm_crf_ner"),
        "spacy_ner_model_bytes": disk_size(theirs, "ner") + disk_size(theirs, "tok2vec"),
    }
    result["ratio"] = round(result["ours_wps"] / result["spacy_ner_wps"], 2)
    if args.train_epoch:
        train = sentences(CONLL / "train.txt")
        result["ours_epoch_seconds"] = round(time_epoch(ours, train), 1)
        result["spacy_ner_epoch_seconds"] = round(time_epoch(theirs, train), 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    result.update({
        "command": "python bench/speed.py " + " ".join(sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "cores": os.cpu_count(),
        "torch_threads": __import__("torch").get_num_threads(),
    })
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    from accuracy import write_table

    write_table()
    print(json.dumps({k: result[k] for k in ("ours_wps", "spacy_ner_wps", "ratio")} | {"command": result["command"]}))


if __name__ == "__main__":
    main()
