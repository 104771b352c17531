"""Accuracy benchmarks: train on a corpus's train split, early-stop on its dev
split, report test scores; ours or spaCy's own `ner` on the same files.

    python bench/accuracy.py conll2003_novectors [--peer spacy_ner] [--max-steps N] [--patience N]

Benchmarks: conll2003_novectors (configs/bilstm_crf.cfg), conll2003
(configs/bilstm_crf_glove.cfg; needs --vectors, a pipeline with GloVe
vectors), bc2gm and ncbi_disease (the GloVe config with --vectors, else
configs/bilstm_crf.cfg). Every benchmark scores the recognizer on the corpus's
own sentences (see GOLD_SENTENCES). Writes
bench/results/<name>.json: ours at the top level, a peer's run under "peers"
(each with the command, the date and the machine's cores), and updates the
table in bench/RESULTS.md.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "work"
# name: (data folder, train, dev, test, whether --vectors is "required",
# "refused" or "optional"); with vectors the GloVe config trains
BENCHMARKS = {
    "conll2003_novectors": ("conll2003", "train.txt", "valid.txt", "test.txt", "refused"),
    "conll2003": ("conll2003", "train.txt", "valid.txt", "test.txt", "required"),
    "bc2gm": ("bio/BC2GM-IOB", "train.tsv", "devel.tsv", "test.tsv", "optional"),
    "ncbi_disease": ("bio/NCBI-disease-IOB", "train.tsv", "devel.tsv", "test.tsv", "optional"),
}


# The protocol of every benchmark here, as published results are measured:
# each doc is one gold sentence (`convert --n-sents 1`) and is the sequence the
# BiLSTM runs over, so the pipeline leaves out the configs' rule-based
# sentencizer, which is there for raw text. Training on 10-sentence docs cut
# by the sentencizer scored CoNLL-2003 dev F1 92.37 against 93.15 (the GloVe
# config of the time, with unk_alpha = 1, 2,000 steps), and on
# BC2GM the sentencizer cuts gold sentences at "." tokens inside them (its
# sentence precision on the dev split is 69%). See bench/TUNING.md.
GOLD_SENTENCES = ["--nlp.pipeline", '["bilstm_crf_ner"]', "--training.annotating_components", "[]",
                  *(arg for score in ("sents_f", "sents_p", "sents_r")
                    for arg in (f"--training.score_weights.{score}", "null"))]


def convert(source: Path, dest: Path) -> Path:
    """A corpus file as a DocBin of one gold sentence per doc (converted
    afresh each run: a copy left from an older protocol is not reused)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    run("-m", "spacy_bilstm_crf", "convert", source, dest, "--n-sents", 1, "--overwrite")
    return dest


def run(*args):
    print("$", " ".join(map(str, args)), flush=True)
    subprocess.run([sys.executable, *map(str, args)], check=True)


def spacy_ner_config(path: Path, vectors: bool) -> Path:
    """spaCy's `ner` as `spacy init config` writes it: "efficiency", or with
    vectors "accuracy" (the one that uses static vectors)."""
    out = path / "spacy_ner.cfg"
    optimize = "accuracy" if vectors else "efficiency"
    run("-m", "spacy", "init", "config", out, "--lang", "en", "--pipeline", "ner", "--optimize", optimize, "--force")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    parser.add_argument("--peer", choices=["spacy_ner"], help="train spaCy's own ner instead of ours")
    parser.add_argument("--vectors", help="pipeline with static vectors (conll2003)")
    parser.add_argument("--max-steps", type=int, default=20000)
    parser.add_argument("--patience", type=int, default=2000)
    parser.add_argument("--eval-frequency", type=int, default=400)
    args = parser.parse_args()
    folder, train, dev, test, vectors = BENCHMARKS[args.name]
    if vectors == "required" and not args.vectors:
        parser.error(f"{args.name} needs --vectors, a pipeline with GloVe vectors (see bench/README.md)")
    if vectors == "refused" and args.vectors:
        parser.error(f"{args.name} is the benchmark without vectors; drop --vectors")
    config = "bilstm_crf_glove.cfg" if args.vectors else "bilstm_crf.cfg"
    work = WORK / (args.name + (f".{args.peer}" if args.peer else ""))
    corpus = work / "corpus"
    for split in (train, dev, test):
        convert(DATA / folder / split, corpus / f"{Path(split).stem}.spacy")
    config_path = spacy_ner_config(work, bool(args.vectors)) if args.peer else ROOT / "configs" / config
    overrides = ["--paths.train", corpus / f"{Path(train).stem}.spacy", "--paths.dev", corpus / f"{Path(dev).stem}.spacy",
                 "--training.max_steps", args.max_steps, "--training.patience", args.patience,
                 "--training.eval_frequency", args.eval_frequency]
    if not args.peer:
        overrides += GOLD_SENTENCES
        # spaCy's logger will not overwrite a log, and a stale one would be
        # plotted as this run's learning curve
        (work / "log.jsonl").unlink(missing_ok=True)
        overrides += ["--training.logger.output_file", work / "log.jsonl"]
    if args.vectors:
        overrides += ["--paths.vectors", args.vectors]
    start = time.time()
    run("-m", "spacy", "train", config_path, "--output", work / "training", *overrides)
    train_seconds = time.time() - start
    scores_path = work / "test_scores.json"
    run("-m", "spacy_bilstm_crf", "evaluate", work / "training" / "model-best", corpus / f"{Path(test).stem}.spacy",
        "--output", scores_path, "--plots", work / "plots", "--log", work / "log.jsonl")
    scores = json.loads(scores_path.read_text())
    meta = json.loads((work / "training" / "model-best" / "meta.json").read_text())
    result = {
        "benchmark": args.name, "system": args.peer or "bilstm_crf_ner",
        "test_ents_f": scores["ents_f"], "test_ents_p": scores["ents_p"], "test_ents_r": scores["ents_r"],
        "test_ents_per_type": scores["ents_per_type"],
        "dev_ents_f": meta["performance"].get("ents_f"),
        "train_seconds": round(train_seconds),
        "command": "python bench/accuracy.py " + " ".join(sys.argv[1:]),
        "date": datetime.date.today().isoformat(), "cores": os.cpu_count(),
    }
    save_result(args.name, result, args.peer)
    write_table()
    print(json.dumps({k: result[k] for k in ("benchmark", "system", "test_ents_f", "dev_ents_f")}))


def save_result(name: str, result: dict, peer: str = None) -> None:
    """bench/results/<name>.json holds ours at the top level and each peer's
    run under "peers"; a new run replaces only its own part."""
    path = RESULTS / f"{name}.json"
    saved = json.loads(path.read_text()) if path.exists() else {"benchmark": name}
    if peer:
        saved.setdefault("peers", {})[peer] = result
    else:
        saved = {**result, "peers": saved.get("peers", {})}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved, indent=2) + "\n")


def write_table():
    """bench/RESULTS.md from every results file: accuracy and speed rows in
    one table, other benchmarks (with a "summary") in a second."""
    rows, others = [], []
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        if "summary" in r:
            others.append(f"| {path.stem} | {r['summary']} | {r['date']} | `{r['command']}` |")
        elif "ratio" in r:
            rows.append(f"| speed (CoNLL-2003 test, nlp.pipe) | ours {r['ours_wps']} w/s, spaCy ner {r['spacy_ner_wps']} w/s "
                        f"| ratio {r['ratio']} | | | {r['date']} | `{r['command']}` |")
        for run in ([r] if "test_ents_f" in r else []) + list(r.get("peers", {}).values()):
            rows.append(f"| {run['benchmark']} | {run['system']} | {100 * run['test_ents_f']:.2f} | "
                        f"{100 * (run.get('dev_ents_f') or 0):.2f} | {run['train_seconds']} | {run['date']} | "
                        f"`{run['command']}` |")
    table = ("| benchmark | system | test F1 | dev F1 | train s | date | command |\n"
             "| --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n")
    if others:
        table += ("\n## Other benchmarks\n\n| benchmark | result | date | command |\n| --- | --- | --- | --- |\n"
                  + "\n".join(others) + "\n")
    (ROOT / "bench" / "RESULTS.md").write_text(
        "# Benchmark results\n\nWritten by the bench scripts (see bench/README.md); one row per run (ours and each peer), "
        f"measured on this project's {os.cpu_count()}-core CPU machines.\n\n" + table)


if __name__ == "__main__":
    main()
