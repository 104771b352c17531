"""Scale-out: documents/s and words/s of `predict --engine ray` with 1 and 2
workers (actors, one CPU and one torch thread each), on a corpus of CoNLL-2003
training sentences resampled into documents.

    python bench/scale.py                        # a pipeline trained briefly here
    python bench/scale.py --model PATH --docs 20000 --workers 1 2

Each run labels the whole corpus into a fresh shard folder through the library
call behind `python -m spacy_bilstm_crf predict CORPUS OUT --engine ray`
(a local Ray; --address for a cluster). Start-up cost is measured apart, as
the same command on N one-document partitions for N workers (Ray start, N
actor processes with their imports, model load, Ray shutdown). Actors report
their model load time, busy time and peak RSS. Three throughputs: end-to-end
(documents over the command's wall time), steady (over the wall time less
the start-up cost: what a long job sees) and labelling (over the busiest
actor's busy time: the actors alone). The last line printed is JSON; the result goes
to bench/results/scale.json with the command that produced it.
"""
import argparse
import datetime
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONLL = ROOT.parent / "shared" / "datasets" / "conll2003"
WORK = ROOT / "bench" / "work" / "scale"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from spacy_bilstm_crf.records import Options  # noqa: E402
from spacy_bilstm_crf.scale import predict_records  # noqa: E402


def conll_sentences(path):
    """Token lists of the sentences of a CoNLL-2003 file."""
    sents, words = [], []
    for line in open(path, encoding="utf8"):
        line = line.strip()
        if not line or line.startswith("-DOCSTART-"):
            if words:
                sents.append(words)
                words = []
            continue
        words.append(line.split()[0])
    if words:
        sents.append(words)
    return sents


def make_corpus(path, n_docs, seed=0, max_sents=8):
    """n_docs documents of 1..max_sents sentences drawn at random (with
    replacement); returns the number of words."""
    rng = random.Random(seed)
    sents = conll_sentences(CONLL / "train.txt")
    words = 0
    with open(path, "w", encoding="utf8") as f:
        for i in range(n_docs):
            doc = [rng.choice(sents) for _ in range(rng.randint(1, max_sents))]
            words += sum(len(s) for s in doc)
            f.write(json.dumps({"id": f"doc{i:06d}", "text": " ".join(" ".join(s) for s in doc)}) + "\n")
    return words


def quick_model(path):
    """The default config, trained for a few updates on 200 CoNLL sentences
    (speed does not depend on training; this is enough to predict entities)."""
    import spacy
    from speed import ours_pipeline, quick_train, sentences
    from spacy.util import fix_random_seed

    fix_random_seed(0)
    nlp = quick_train(ours_pipeline(), sentences(CONLL / "train.txt", 200), steps=40)
    nlp.to_disk(path)
    return spacy.load(path)


def run(model, corpus, out, workers, args, partition_size=None):
    if out.exists():
        shutil.rmtree(out)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = predict_records(str(model), corpus, out, fmt="jsonl", engine="ray", workers=workers,
                           address=args.address, batch_size=args.batch_size,
                           options=Options(partition_size=partition_size or args.partition_size))
    seconds = time.perf_counter() - start
    print(f"{workers} worker(s), {corpus.name}: {seconds:.1f} s, load average {load:.1f} before", file=sys.stderr)
    return seconds, done, load


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a trained pipeline (default: the default config trained briefly here)")
    parser.add_argument("--docs", type=int, default=50000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=1, help="timed runs per worker count (median reported)")
    parser.add_argument("--partition-size", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--address", help="a Ray cluster (default: a local Ray)")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "scale.json"))
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    corpus = WORK / f"corpus-{args.docs}.jsonl"
    words = make_corpus(corpus, args.docs)
    model = Path(args.model) if args.model else WORK / "model"
    if not args.model:
        quick_model(model)
    startup = {}
    with corpus.open(encoding="utf8") as f:
        first = [next(f) for _ in range(max(args.workers))]
    for w in args.workers:  # the same command on w documents, one partition (and actor) each
        tiny = WORK / f"startup-{w}.jsonl"
        tiny.write_text("".join(first[:w]), encoding="utf8")
        seconds, done, _ = run(model, tiny, WORK / f"out-startup-{w}", w, args, partition_size=1)
        startup[w] = (seconds, max(x["load_s"] for x in done["workers"]))
    result = {"docs": args.docs, "words": words, "partition_size": args.partition_size, "batch_size": args.batch_size,
              "runs": {}}
    times = {w: [] for w in args.workers}
    for _ in range(args.runs):
        for w in args.workers:
            seconds, done, load = run(model, corpus, WORK / f"out-{w}", w, args)
            assert done["documents"] == args.docs, done
            times[w].append(seconds)
            result["runs"][str(w)] = {
                "seconds": [round(s, 2) for s in times[w]],
                "startup_s": round(startup[w][0], 2),
                "model_load_s_in_actor": round(startup[w][1], 2),
                "load_avg_1min_before": round(load, 2),
                "peak_rss_mb_per_worker": sorted(round(x["peak_rss_mb"]) for x in done["workers"]),
                "partitions_per_worker": sorted(x["partitions"] for x in done["workers"]),
                "busy_s_per_worker": sorted(round(x["busy_s"], 1) for x in done["workers"]),
                "idle_s_per_worker": sorted(round(x["idle_s"], 1) for x in done["workers"]),
            }
    for w in args.workers:
        seconds = statistics.median(times[w])
        r = result["runs"][str(w)]
        r["docs_per_s"] = round(args.docs / seconds, 1)
        r["words_per_s"] = round(words / seconds)
        r["steady_docs_per_s"] = round(args.docs / (seconds - startup[w][0]), 1)
        r["labelling_docs_per_s"] = round(args.docs / max(r["busy_s_per_worker"]), 1)  # the slowest actor's busy time
        r["docs_per_s_per_worker"] = round(args.docs / sum(r["busy_s_per_worker"]), 1)
    if {1, 2} <= set(args.workers):
        one, two = result["runs"]["1"], result["runs"]["2"]
        result["speedup_2_vs_1"] = round(two["docs_per_s"] / one["docs_per_s"], 2)
        result["steady_speedup_2_vs_1"] = round(two["steady_docs_per_s"] / one["steady_docs_per_s"], 2)
        result["labelling_speedup_2_vs_1"] = round(two["labelling_docs_per_s"] / one["labelling_docs_per_s"], 2)
        result["summary"] = (f"Ray, {result['docs']} docs: 1 worker {one['docs_per_s']} docs/s, 2 workers "
                             f"{two['docs_per_s']} docs/s: {result['speedup_2_vs_1']}x end to end, "
                             f"{result['steady_speedup_2_vs_1']}x after start-up")
    result.update({
        "command": " ".join(["python", "bench/scale.py", *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "cores": os.cpu_count(),
        "engine": "ray " + __import__("ray").__version__ + (f" at {args.address}" if args.address else " (local)"),
    })
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result.get(k) for k in ("speedup_2_vs_1", "steady_speedup_2_vs_1", "labelling_speedup_2_vs_1",
                                                  "command")}
                     | {f"docs_per_s_{w}": result["runs"][str(w)]["docs_per_s"] for w in args.workers}))
    if Path(args.output).resolve() == (ROOT / "bench" / "results" / "scale.json").resolve():
        from accuracy import write_table

        write_table()


if __name__ == "__main__":
    main()
