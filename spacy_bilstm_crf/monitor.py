"""Watching training as it runs: a spaCy logger that does what
spacy.ConsoleLogger.v3 does (table, progress bar, JSONL log) and also
redraws the learning curve as a PNG and writes TensorBoard event files at
every evaluation, so a person can look at a run while it trains."""
import importlib
import os
import sys
import time
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Tuple

from spacy.training.loggers import console_logger_v3
from spacy.util import registry
from thinc.api import ConfigValidationError

from .errors import Errors
from .evaluation import plot_learning_curve

LogStep = Callable[[Optional[Dict[str, Any]]], None]


@registry.loggers("spacy_bilstm_crf.MonitorLogger.v1")
def monitor_logger_v1(progress_bar: Optional[str] = None, console_output: bool = True,
                      output_file: Optional[str] = None, plot: Optional[str] = None,
                      tensorboard_dir: Optional[str] = None):
    """spacy.ConsoleLogger.v3, and live views of the run.

    progress_bar, console_output, output_file: as in spacy.ConsoleLogger.v3,
        but where output_file holds an earlier run's log (which
        ConsoleLogger.v3 would keep, logging nothing) that log is kept as
        NAME.N.jsonl (the first free N) and this run's log written in its
        place, so that the log, the plot and `evaluate --log` tell of the
        same run.
    plot (Optional[str]): a PNG of the dev score and the losses against the
        step, redrawn after every evaluation (needs matplotlib: extra [plots]).
    tensorboard_dir (Optional[str]): a folder for TensorBoard event files,
        a subfolder per run (run-DATE-TIME-PID): losses, the score, every dev
        score and per-type P/R/F (extra [tensorboard]; view with
        `tensorboard --logdir DIR`).
    """
    writer_class = _summary_writer() if tensorboard_dir else None
    if plot:
        _require_matplotlib()
        if Path(plot).is_dir():
            raise _setting_error("plot", Errors.E013.format(path=plot))

    def setup(nlp, stdout: IO = sys.stdout, stderr: IO = sys.stderr) -> Tuple[LogStep, Callable[[], None]]:
        kept = _set_aside(Path(output_file)) if output_file else None  # here, not above: only a run moves it
        console = console_logger_v3(progress_bar=progress_bar, console_output=console_output, output_file=output_file)
        log_console, finish_console = console(nlp, stdout, stderr)
        if kept is not None:
            print(f"ℹ {output_file} held an earlier run's log: kept as {kept}", file=stdout, flush=True)
        score_cols = [c for c, w in nlp.config["training"]["score_weights"].items() if w is not None]
        run = time.strftime(f"run-%Y%m%d-%H%M%S-{os.getpid()}")  # runs into one folder stay apart
        writer = writer_class(log_dir=str(Path(tensorboard_dir) / run)) if writer_class else None
        rows: List[Dict] = []
        drawing = bool(plot)

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            nonlocal drawing
            log_console(info)
            if info is None:
                return
            if drawing:
                rows.append(curve_row(info, score_cols))
                try:
                    _draw(rows, Path(plot))
                except (OSError, ValueError) as err:  # a view of the run is not worth the run (ValueError:
                    # a suffix matplotlib cannot write)
                    print(f"⚠ Stopped drawing {plot}: {err}", file=stderr, flush=True)
                    drawing = False
            if writer is not None:
                for tag, value in scalars(info):
                    writer.add_scalar(tag, value, info["step"])
                writer.flush()

        def finalize() -> None:
            finish_console()
            if writer is not None:
                writer.close()

        return log_step, finalize

    return setup


def curve_row(info: Dict[str, Any], score_cols: List[str]) -> Dict:
    """An evaluation as spacy.ConsoleLogger.v3 writes it to its output_file
    (scores as percentages), which plot_learning_curve reads."""
    scores = {c: float(info["other_scores"].get(c) or 0.0) * (1 if c == "speed" else 100) for c in score_cols}
    return {"epoch": info["epoch"], "step": info["step"], "score": float(info["score"]),
            "losses": {k: float(v) for k, v in info["losses"].items()}, "scores": scores}


def scalars(info: Dict[str, Any]) -> Iterator[Tuple[str, float]]:
    """The numbers of an evaluation, named for TensorBoard: loss/PIPE,
    score, dev/NAME (ents_f, ...) and dev/NAME/LABEL/p|r|f (ents_per_type).
    Scores stay fractions, as spaCy gives them."""
    for pipe, loss in info["losses"].items():
        yield f"loss/{pipe}", float(loss)
    yield "score", float(info["score"])
    for name, value in info["other_scores"].items():
        if isinstance(value, (int, float)):
            yield f"dev/{name}", float(value)
        elif isinstance(value, dict):
            for label, metrics in value.items():
                for metric, number in (metrics.items() if isinstance(metrics, dict) else ()):
                    if isinstance(number, (int, float)):
                        yield f"dev/{name}/{label}/{metric}", float(number)


def _set_aside(path: Path) -> Optional[Path]:
    """Move an earlier run's log to NAME.N.SUFFIX (the first free N); the new path."""
    if not path.is_file():
        return None
    n = 1
    while path.with_name(f"{path.stem}.{n}{path.suffix}").exists():
        n += 1
    kept = path.with_name(f"{path.stem}.{n}{path.suffix}")
    os.replace(path, kept)
    return kept


def _draw(rows: List[Dict], path: Path) -> None:
    """Redraw the curve into a new file, then put it in place: a viewer never
    opens a half-written PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix or '.png'}")
    plot_learning_curve(rows, partial)
    os.replace(partial, path)


def _setting_error(setting: str, message: str) -> ConfigValidationError:
    """A logger setting that cannot be used, as a config error: `spacy train`
    shows it in one message, without a traceback."""
    return ConfigValidationError(errors=[{"loc": ["training", "logger", setting], "msg": message}],
                                 title="Cannot log as configured", show_config=False)


def _summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise _setting_error("tensorboard_dir", Errors.E012.format(setting="tensorboard_dir", extra="tensorboard")) from None
    return SummaryWriter


def _require_matplotlib() -> None:
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        raise _setting_error("plot", Errors.E012.format(setting="plot", extra="plots")) from None
