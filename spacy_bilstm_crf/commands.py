"""One function per CLI command, thin over the library."""
import dataclasses
import itertools
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import spacy
import srsly
from spacy.tokens import Doc

from .confidence import entity_rows
from .documents import (LONGEST_TEXT, check_output, format_by_name, infer_format, input_format, progress_bar,
                        read_docs, require_input, without_ents, write_docs)
from .errors import FormatError, counted, decode
from .formats import conll
from .shards import errors_file


def check_pipeline(model: str) -> None:
    """A one-line error when the model is a path but not a pipeline folder."""
    path = Path(model)
    if path.is_file():
        raise FormatError(path, None, "is a file: pass the pipeline's folder (the one holding config.cfg, e.g. "
                                      "training/model-best), or an installed package's name.")
    if not path.exists() and ("/" in model or "\\" in model or model.startswith(".")):  # a path, not a package
        raise FormatError(path, None, "no such pipeline folder: pass a folder written by `spacy train` (e.g. "
                                      "training/model-best) or `nlp.to_disk`, or an installed package's name.")
    if path.exists() and not (path / "config.cfg").is_file():
        raise FormatError(path, None, "not a spaCy pipeline (no config.cfg): pass a folder written by `spacy train` "
                                      "(e.g. training/model-best) or `nlp.to_disk`, or an installed package's name.")


def _load(model: str):
    check_pipeline(model)
    try:
        nlp = spacy.load(model)
    except OSError:
        raise  # spaCy's messages for a name or path it cannot find say what to do
    except Exception as err:  # a pipeline folder whose files do not load: the user's files, not our bug
        raise FormatError(model, None, f"cannot load this pipeline ({type(err).__name__}: {err}); its files may "
                                       "be damaged or from another version: train or save it again.") from None
    if not _entity_labels(nlp):
        say("⚠", f"{model}: no component of this pipeline has entity labels ({', '.join(nlp.pipe_names) or 'none'}); "
                 "it will find no entities.", file=sys.stderr)
    return nlp


def convert(input_path: Path, output_path: Path, *, from_format: Optional[str], to_format: Optional[str],
            lang: str, n_sents: int, tag_column: int, scheme: Optional[str], out_scheme: Optional[str],
            encoding: str, overwrite: bool = False) -> None:
    src = infer_format(input_path, from_format, reading=True, flag="--from")
    dst = infer_format(output_path, to_format, reading=False, flag="--to", formats=("conll", "brat", "spacy", "jsonl"))
    if dst == "parquet":  # by its name
        raise FormatError(output_path, None, "convert writes spacy, conll, brat or jsonl; Parquet is for predict's "
                                             "records.")
    check_output(output_path, input_path, folder=dst == "brat", read_back=True)
    nlp = spacy.blank(lang)
    docs, info = read_docs(input_path, src, nlp, n_sents=n_sents, tag_column=tag_column, scheme=scheme,
                           encoding=encoding)
    _say_notes(info["notes"])
    notes = write_docs(docs, output_path, dst, scheme=out_scheme, overwrite=overwrite, conf_from=input_path)
    _say_notes(notes)
    sents = info.get("sentences")
    sents = f", {counted(sents, 'sentence')}" if sents is not None else ""
    scheme_note = f" ({info['scheme']} tags)" if info.get("scheme") else ""
    say("✔", f"Read {counted(len(docs), 'document')}{sents}, {counted(info['entities'], 'entity')} from {input_path} "
             f"[{src}{scheme_note}]; wrote {counted(len(docs), 'document')}, "
             f"{counted(sum(len(d.ents) for d in docs) - notes.get(conll.WHITESPACE_ENTITIES, 0), 'entity')} "
             f"to {output_path} [{dst}]")


def predict(model: str, input_path: Path, output_path: Path, *, to_format: Optional[str],
            batch_size: int, encoding: str, engine: Optional[str] = None, n_process: int = 1, gpu_id: int = -1,
            address: Optional[str] = None, workers: Optional[int] = None, cpus_per_worker: int = 1,
            text_column: str = "text", id_column: str = "id", partition_size: int = 1000,
            score_notes: bool = False, overwrite: bool = False) -> None:
    """Label a folder of .txt files (or a DocBin / CoNLL / BRAT input) and write
    the predictions, by default as BRAT files beside copies of the texts.
    Records (.txt folders, JSONL, Parquet) to JSONL/Parquet, or with --engine
    ray, go through the record pipeline (scale.py): sharded, resumable."""
    from .scale import check_engine, require_gpu

    if engine is not None:
        check_engine(engine)
    require_input(input_path, encoding)
    check_pipeline(model)
    check_output(output_path, input_path, model=model, folder=None, read_back=True)
    fmt = _records_format(input_path, output_path, to_format, engine)
    if fmt is not None:
        return _predict_records(model, input_path, output_path, fmt, batch_size=batch_size, encoding=encoding,
                                engine=engine or "process", n_process=n_process, gpu_id=gpu_id, address=address,
                                workers=workers, cpus_per_worker=cpus_per_worker, text_column=text_column,
                                id_column=id_column, partition_size=partition_size, overwrite=overwrite,
                                score_notes=score_notes)
    if engine == "ray":
        raise FormatError(input_path, None, "--engine ray reads a folder of .txt files, a .jsonl or a .parquet file.")
    require_gpu(gpu_id)
    nlp = _load(model)
    dst = infer_format(output_path, to_format, reading=False, flag="--to")
    if dst == "parquet":
        raise FormatError(output_path, None, "Parquet output needs a folder of .txt files, JSONL or Parquet input.")
    docs, _ = read_docs(input_path, input_format(input_path, encoding), nlp, n_sents=10, tag_column=-1,
                        scheme=None, encoding=encoding)
    outputs, dropped = [], [0]
    for doc in progress_bar(nlp.pipe(without_ents(docs, dropped), batch_size=batch_size, n_process=n_process),
                            "Predicting", total=len(docs)):
        outputs.append(doc)
    write_docs(outputs, output_path, dst, labels=_entity_labels(nlp), score_notes=score_notes, overwrite=overwrite,
               conf_from=input_path)
    if dropped[0]:
        say("⚠", f"{counted(dropped[0], 'annotation line')} of the input other than entities (relations, events, "
                 f"attributes, notes) refer to its entities, which the predictions replace: they are not in the "
                 f"output (the input keeps them)")
    say("✔", f"Labelled {counted(len(outputs), 'document')}: {counted(sum(len(d.ents) for d in outputs), 'entity')} "
             f"written to {output_path} [{dst}]")


def _records_format(input_path: Path, output_path: Path, to_format: Optional[str],
                    engine: Optional[str]) -> Optional[str]:
    """The output format when the input goes through the record pipeline
    (JSONL/Parquet in or out, or --engine ray), else None."""
    from .records import input_kind

    kind = input_kind(input_path)
    suffix = output_path.suffix.lower()
    fmt = to_format or (suffix[1:] if suffix in (".jsonl", ".parquet") else None)
    if kind is None or not (kind in ("jsonl", "parquet") or fmt in ("jsonl", "parquet") or engine == "ray"):
        return None
    named = format_by_name(output_path)
    if fmt not in (None, "jsonl", "parquet", "brat") or (fmt is None and named):
        why = f"--to {fmt}" if fmt else f"its name ({suffix}) says {named}"
        raise FormatError(output_path, None, f"{why}, but records ({kind} input{', --engine ray' if engine else ''}) "
                                             "are written as jsonl, parquet or brat: name the output .jsonl, "
                                             ".parquet or a folder, or pass --to jsonl|parquet|brat.")
    return fmt or (kind if kind in ("jsonl", "parquet") else "brat")


def _predict_records(model: str, input_path: Path, output_path: Path, fmt: str, *, encoding: str,
                     text_column: str, id_column: str, partition_size: int, **engine_args) -> None:
    from .records import Options, pyarrow_parquet
    from .scale import predict_records

    if fmt == "parquet":
        pyarrow_parquet()  # a FormatError naming the extra, before any work
    if output_path.suffix.lower() == f".{fmt}":
        check_output(errors_file(output_path), input_path)
    options = Options(text_column=text_column, id_column=id_column, partition_size=partition_size, encoding=encoding,
                      ids_as_text=fmt == "brat")
    done = predict_records(model, input_path, output_path, fmt=fmt, options=options, labels=_entity_labels,
                           progress=lambda total: progress_bar([], "Predicting", total=total), **engine_args)
    if done["errors"]:
        single = output_path.suffix.lower() == f".{fmt}"
        where = errors_file(output_path) if single else output_path / "*.errors.jsonl"
        say("⚠", f"{counted(done['errors'], 'row')} could not be labelled: their ids and reasons are in {where}")
    skipped = f"; {done['skipped']} of {done['total_partitions']} partitions were already written" if done["skipped"] else ""
    say("✔", f"Labelled {counted(done['documents'], 'document')} in {counted(done['partitions'], 'partition')}: "
             f"{counted(done['entities'], 'entity')} written to {output_path} [{fmt}]{skipped}")


def _entity_labels(nlp) -> set:
    """The labels of every pipe that has them."""
    labels: set = set()
    for name in nlp.pipe_names:
        labels |= set(getattr(nlp.get_pipe(name), "labels", ()) or ())
    return labels


def _say_notes(notes: Dict[str, int]) -> None:
    for note, count in notes.items():
        say("⚠", f"{count} x {note}")


def say(icon: str, text: str, file=None) -> None:
    """One status line, never wrapped (so FILE:LINE stays whole)."""
    print(f"{icon} {text}", file=file or sys.stdout, flush=True)


def evaluate(model: str, data_path: Path, *, output: Optional[Path], plots: Optional[Path],
             log: Optional[Path], encoding: str, displacy_path: Optional[Path] = None,
             displacy_limit: int = 25) -> Dict:
    """Score a pipeline on gold data (any format): per-type P/R/F1, confusion
    matrix; with --plots, PNGs of the confusion matrix and learning curve; with
    --displacy-path, entities.html of the first docs' predictions (as `spacy
    evaluate` writes it for spaCy's `ner` only)."""
    from spacy.scorer import Scorer

    from . import evaluation
    from .visualize import write_page

    if log and not plots:
        raise FormatError(log, None, "--log is drawn as the learning curve: pass --plots FOLDER too.")
    for out, folder in ((output, False), (plots, True), (displacy_path, True)):
        if out:
            check_output(out, data_path, *([log] if log else []), model=model, folder=folder)
    training_log = evaluation.read_training_log(log) if log else None  # a bad log fails before predicting
    nlp, predicted = _predicted_examples(model, data_path, encoding)
    scores = Scorer(nlp).score(predicted)  # what nlp.evaluate computes, without predicting twice
    result = {k: scores[k] for k in ("ents_p", "ents_r", "ents_f", "ents_per_type") if k in scores}
    result["confusion"] = evaluation.confusion(predicted)
    result["documents"] = len(predicted)
    print(evaluation.report_table(result))
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(output, result)
        say("✔", f"Saved scores to {output}")
    if plots:
        plots.mkdir(parents=True, exist_ok=True)
        written = [evaluation.plot_confusion(result["confusion"], plots / "confusion_matrix.png")]
        if training_log is not None:
            written.append(evaluation.plot_learning_curve(training_log, plots / "learning_curve.png"))
        say("✔", "Saved plots: " + ", ".join(str(p) for p in written if p))
    if displacy_path:
        page = displacy_path / "entities.html"
        shown = [eg.predicted for eg in predicted[:displacy_limit]]
        write_page(page, shown, _entity_labels(nlp), title=f"{model}: predicted entities")
        say("✔", f"Saved {page}: the predicted entities of {counted(len(shown), 'document')}")
    return result


def _predicted_examples(model: str, data_path: Path, encoding: str):
    """The pipeline and Examples of its predictions (on the gold docs' words,
    or on BRAT texts tokenized afresh) against the gold docs."""
    from spacy.training import Example

    nlp = _load(model)
    src = infer_format(data_path, None, reading=True)
    gold, info = read_docs(data_path, src, nlp, n_sents=10, tag_column=-1, scheme=None, encoding=encoding)
    _say_notes(info["notes"])
    if not any(len(doc) and doc.has_annotation("ENT_IOB") for doc in gold):  # an empty doc counts as annotated
        raise FormatError(data_path, None, "holds no entity annotation (no document has any): there is nothing "
                                           "to score against. Give gold data (BRAT texts need their .ann files).")
    inputs = [nlp.make_doc(doc.text) if src == "brat" else
              Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc]) for doc in gold]
    docs = progress_bar(nlp.pipe(inputs), "Predicting", total=len(inputs))
    return nlp, [Example(doc, ref) for doc, ref in zip(docs, gold)]


def analyze(model: str, data_path: Path, *, output: Optional[Path], n_examples: int, encoding: str) -> Dict:
    """Split a pipeline's errors on gold data into boundary, type, missed and
    spurious entities, per type, with examples; typed and binary scores."""
    from .analysis import analysis_table, error_analysis

    if output:
        check_output(output, data_path, model=model)
    _, predicted = _predicted_examples(model, data_path, encoding)
    result = error_analysis(predicted, n_examples=n_examples)
    result["documents"] = len(predicted)
    print(analysis_table(result))
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(output, result)
        say("✔", f"Saved the error analysis to {output}")
    return result


def _labelled(model: str, input_path: Path, encoding: str, limit: int, text_column: str = "text",
              id_column: str = "id"):
    """The pipeline, its entity labels and the input docs, labelled by it."""
    require_input(input_path, encoding)
    nlp = _load(model)
    from .records import Options, input_kind

    if input_kind(input_path) in ("jsonl", "parquet"):
        options = Options(encoding=encoding, text_column=text_column, id_column=id_column)
        return nlp, _entity_labels(nlp), _labelled_records(nlp, input_path, options, limit)
    fmt = input_format(input_path, encoding)
    if fmt == "brat" and input_path.is_file():  # a raw .txt file: one text per line
        text = decode(input_path.read_bytes(), input_path, encoding)
        texts = [line for line in text.splitlines() if line.strip()]
        docs = list(nlp.pipe(texts[:limit] if limit else texts))
    else:
        docs, _ = read_docs(input_path, fmt, nlp, n_sents=10, tag_column=-1, scheme=None, encoding=encoding)
        docs = list(nlp.pipe(without_ents(docs[:limit] if limit else docs)))
    return nlp, _entity_labels(nlp), docs


def _labelled_records(nlp, input_path: Path, options, limit: int) -> List[Doc]:
    """The first `limit` (0: all) labellable rows of a JSONL/Parquet input,
    read no further than they are, labelled, each titled by its id; rows
    without a text are counted in a warning."""
    from .records import stream

    records, skipped = [], Counter()
    for record in stream(input_path, options):
        if record.error is not None:
            skipped[record.error.split(" (")[0]] += 1
            continue
        records.append(record)
        if len(records) == limit:
            break
    if skipped:
        reasons = "; ".join(f"{reason} ({n})" for reason, n in skipped.most_common())
        say("⚠", f"{counted(sum(skipped.values()), 'row')} of {input_path} left out: {reasons}")
    docs = list(nlp.pipe(r.text for r in records))
    for doc, record in zip(docs, records):
        doc.user_data["title"] = str(record.id)
    return docs


def visualize(model: str, input_path: Path, output: Path, *, limit: int, encoding: str,
              text_column: str = "text", id_column: str = "id") -> None:
    """Write a displaCy page of the model's entities on the input."""
    from .visualize import write_page

    check_output(output, input_path, model=model)
    _, labels, docs = _labelled(model, input_path, encoding, limit, text_column, id_column)
    write_page(output, docs, labels)
    say("✔", f"Wrote {output}: {counted(len(docs), 'document')}, {counted(sum(len(d.ents) for d in docs), 'entity')}")


def serve(model: str, input_path: Path, *, host: str, port: int, limit: int, encoding: str,
          text_column: str = "text", id_column: str = "id") -> None:
    """Serve the displaCy page of the model's entities on the input."""
    from spacy import displacy

    from .visualize import check_address, label_colors, quiet_about_docs_without_entities, titled

    check_address(host, port)  # before the model is loaded and the texts labelled
    _, labels, docs = _labelled(model, input_path, encoding, limit, text_column, id_column)
    quiet_about_docs_without_entities()
    displacy.serve(titled(docs), style="ent", host=host, port=port, options={"colors": label_colors(labels)})


def interact(model: str, *, json_lines: bool, stdin=None, stdout=None) -> int:
    """Read texts line by line (typed, or piped in) and print their entities.
    Returns the number of lines labelled."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    nlp = _load(model)
    nlp.max_length = max(nlp.max_length, LONGEST_TEXT)
    tty = stdin.isatty()
    if tty:
        print("Type a sentence and press Enter to see its entities; Ctrl-D to quit.", file=stdout)
    count = 0
    for number in itertools.count(1):
        if tty:
            print("> ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line:
            break
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:  # undecodable bytes, which Python keeps as surrogates
            say("⚠", f"stdin line {number}: not UTF-8 text ({err.reason} at character {err.start + 1}); "
                     "skipped (convert the input to UTF-8, e.g. with iconv)", file=sys.stderr)
            continue
        doc = nlp(text)
        count += 1
        if json_lines:
            print(srsly.json_dumps({"text": text, "entities": entity_rows(doc)}), file=stdout, flush=True)
            continue
        if not doc.ents:
            print("  (no entities)", file=stdout)
        width = max((len(e.text) for e in doc.ents), default=0)
        for e in doc.ents:
            print(f"  {e.text:<{width}}  {e.label_:<8} {e.start_char}-{e.end_char}", file=stdout)
        stdout.flush()
    return count


def init_vectors(output: Path, *, lang: str, prune_to: List[Path], encoding: str, overwrite: bool = False) -> None:
    """A vectors pipeline for `[initialize] vectors` / `--paths.vectors`."""
    from .vectors import corpus_words, init_glove_vectors, is_vectors_pipeline, remove_components

    if output.exists() and not output.is_dir():
        raise FormatError(output, None, "is a file: the vectors pipeline is a folder. Give a new folder's path.")
    if output.is_dir() and any(output.iterdir()) and not overwrite and not is_vectors_pipeline(output):
        raise FormatError(output, None, "exists and is not a vectors pipeline (a pipeline with components, or "
                                        "other files): give a new folder, or pass --overwrite to replace it.")
    keep = None
    if prune_to:
        nlp = spacy.blank(lang)
        keep = set()
        for path in prune_to:
            docs, _ = read_docs(path, infer_format(path, None, reading=True), nlp, n_sents=10, tag_column=-1,
                                scheme=None, encoding=encoding)
            keep |= corpus_words(docs)
    if overwrite:
        remove_components(output)
    rows, width = init_glove_vectors(output, lang=lang, keep=keep)
    corpora = "1 corpus" if len(prune_to) == 1 else f"{len(prune_to)} corpora"
    pruned = f", pruned to the {counted(len(keep), 'word form')} of {corpora}" if keep is not None else ""
    say("✔", f"Wrote {output}: GloVe 6B {width}d, {counted(rows, 'vector')} looked up by LOWER{pruned}")


def debug_data(config_path: Path, overrides: Dict[str, Any], *, code_path: Optional[Path], details: bool,
               ignore_warnings: bool) -> None:
    """spaCy's `debug data`, with its named-entity checks run on this package's
    component as they are on `ner`'s (labels and their counts, rare labels,
    whitespace entities, entities across sentence boundaries)."""
    from spacy.cli._util import import_code
    from spacy.cli.debug_data import debug_data as spacy_debug_data

    require_input(config_path)
    import_code(code_path)
    with _checked_as_ner():
        spacy_debug_data(config_path, config_overrides=overrides, verbose=details, ignore_warnings=ignore_warnings,
                         no_format=False, silent=False)


@contextmanager
def _checked_as_ner() -> Iterator[None]:
    """spaCy's `debug data` picks its NER section by the factory name "ner":
    while this is open, our component's pipe meta reports that name."""
    from spacy.language import Language

    from .component import FACTORY

    original = Language.get_pipe_meta

    def get_pipe_meta(self, name):
        meta = original(self, name)
        return dataclasses.replace(meta, factory="ner") if meta.factory == FACTORY else meta

    Language.get_pipe_meta = get_pipe_meta
    try:
        yield
    finally:
        Language.get_pipe_meta = original
