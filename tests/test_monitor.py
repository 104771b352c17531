"""spacy_bilstm_crf.MonitorLogger.v1: spaCy's console logger plus a learning
curve PNG redrawn at every evaluation and TensorBoard event files."""
import io
import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
import spacy
from spacy import Config
from spacy.util import registry
from thinc.api import ConfigValidationError

from spacy_bilstm_crf import evaluation, monitor
from spacy_bilstm_crf.monitor import curve_row, monitor_logger_v1, scalars

from .helpers import write_gold_corpus
from .test_cli import ROOT, run

PNG = b"\x89PNG\r\n\x1a\n"


def info(step, f, loss, per_type):
    return {"epoch": 0, "step": step, "score": f, "losses": {"bilstm_crf_ner": loss}, "seconds": 4, "words": 1000,
            "checkpoints": [], "other_scores": {"ents_f": f, "ents_p": f, "ents_r": f, "speed": 1234.0,
                                                "ents_per_type": per_type, "note": "not a number"}}


def event_scalars(folder):
    """The scalars of the one run written under folder (run-DATE-TIME)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = [p for p in folder.iterdir() if p.name.startswith("run-")]
    events = EventAccumulator(str(run))
    events.Reload()
    return {tag: [(e.step, round(e.value, 6)) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_scalars_and_curve_rows_name_every_number():
    row = info(200, 0.5, 12.5, {"PER": {"p": 0.25, "r": 1.0, "f": 0.4}})
    assert dict(scalars(row)) == {
        "loss/bilstm_crf_ner": 12.5, "score": 0.5, "dev/ents_f": 0.5, "dev/ents_p": 0.5, "dev/ents_r": 0.5,
        "dev/speed": 1234.0, "dev/ents_per_type/PER/p": 0.25, "dev/ents_per_type/PER/r": 1.0,
        "dev/ents_per_type/PER/f": 0.4}
    assert curve_row(row, ["ents_f", "speed"]) == {
        "epoch": 0, "step": 200, "score": 0.5, "losses": {"bilstm_crf_ner": 12.5},
        "scores": {"ents_f": 50.0, "speed": 1234.0}}  # percentages, as ConsoleLogger.v3 writes them


def test_the_curve_is_redrawn_and_tensorboard_written_at_every_evaluation(tmp_path, monkeypatch):
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner")
    curve, board, log = tmp_path / "curves" / "learning_curve.png", tmp_path / "tb", tmp_path / "log.jsonl"
    setup = monitor_logger_v1(output_file=str(log), plot=str(curve), tensorboard_dir=str(board))
    stdout = io.StringIO()
    log_step, finalize = setup(nlp, stdout, io.StringIO())
    log_step(None)  # a step without an evaluation draws nothing
    assert not curve.exists()
    drawn_to = []  # the curve is drawn beside the PNG, then put in its place: never seen half-written
    monkeypatch.setattr(monitor, "plot_learning_curve", lambda rows, path: drawn_to.append(path) or
                        evaluation.plot_learning_curve(rows, path))
    log_step(info(20, 0.25, 30.0, {"PER": {"p": 0.5, "r": 0.1, "f": 1 / 6}}))
    assert [p.parent for p in drawn_to] == [curve.parent] and drawn_to[0] != curve
    first = curve.read_bytes()
    assert first.startswith(PNG)
    assert event_scalars(board)["dev/ents_f"] == [(20, 0.25)]  # on disk at once, while training goes on
    log_step(None)
    log_step(info(40, 0.75, 3.0, {"PER": {"p": 0.5, "r": 1.0, "f": 2 / 3}, "LOC": {"p": 1.0, "r": 1.0, "f": 1.0}}))
    finalize()
    assert curve.read_bytes().startswith(PNG) and curve.read_bytes() != first
    assert [p.name for p in curve.parent.iterdir()] == ["learning_curve.png"]  # no partial file left
    assert "25.00" in stdout.getvalue() and "75.00" in stdout.getvalue()  # the console table, as spaCy's
    assert [json.loads(line)["scores"]["ents_f"] for line in log.read_text().splitlines()] == [25.0, 75.0]
    written = event_scalars(board)
    assert written["dev/ents_f"] == [(20, 0.25), (40, 0.75)]
    assert written["loss/bilstm_crf_ner"] == [(20, 30.0), (40, 3.0)]
    assert written["dev/ents_per_type/PER/f"] == [(20, round(1 / 6, 6)), (40, round(2 / 3, 6))]
    assert written["dev/ents_per_type/LOC/r"] == [(40, 1.0)]
    assert "dev/note" not in written


def test_tensorboard_is_flushed_at_every_evaluation(monkeypatch, tmp_path):
    """A live view: the events of each evaluation are flushed as written."""
    calls = []

    class Writer:
        def __init__(self, log_dir):
            calls.append(("open", log_dir))

        def add_scalar(self, tag, value, step):
            calls.append(("scalar", step))

        def flush(self):
            calls.append(("flush",))

        def close(self):
            calls.append(("close",))

    monkeypatch.setattr(monitor, "_summary_writer", lambda: Writer)
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner")
    log_step, finalize = monitor_logger_v1(tensorboard_dir=str(tmp_path))(nlp, io.StringIO(), io.StringIO())
    log_step(info(20, 0.25, 30.0, {}))
    log_step(None)
    log_step(info(40, 0.5, 20.0, {}))
    finalize()
    assert [c[0] for c in calls if c[0] != "scalar"] == ["open", "flush", "flush", "close"]
    assert calls.index(("flush",)) > calls.index(("scalar", 20)) and ("scalar", 40) in calls
    assert calls[0][1].startswith(str(tmp_path / "run-"))


def test_a_missing_package_is_named_with_its_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigValidationError, match=r"pip install 'spacy-bilstm-crf\[tensorboard\]'.*"
                                                    r"tensorboard_dir = null"):
        monitor_logger_v1(tensorboard_dir=str(tmp_path))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigValidationError, match=r"\[plots\]"):
        monitor_logger_v1(plot=str(tmp_path / "c.png"))
    monitor_logger_v1()  # the console alone needs neither


def test_spacy_train_shows_a_setting_it_cannot_use_without_a_traceback(tmp_path):
    """A config error, as spaCy's CLI shows one: the setting and what to
    install, no traceback."""
    corpus = write_gold_corpus(tmp_path)
    blocked = ("import sys; sys.modules['torch.utils.tensorboard'] = None; sys.argv = ['spacy', *sys.argv[1:]]; "
               "from spacy.cli import setup_cli; setup_cli()")
    result = subprocess.run([sys.executable, "-c", blocked, "train", str(ROOT / "configs" / "bilstm_crf.cfg"),
                             "--paths.train", str(corpus / "train.spacy"), "--paths.dev", str(corpus / "dev.spacy"),
                             "--training.logger.tensorboard_dir", str(tmp_path / "tb")],
                            capture_output=True, text=True)
    said = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in said, said
    assert "tensorboard_dir" in said and "pip install 'spacy-bilstm-crf[tensorboard]'" in said


def test_a_plot_path_that_is_a_folder_is_refused_and_a_failing_draw_stops_drawing_only(tmp_path):
    with pytest.raises(ConfigValidationError, match="is a folder: give the path of the PNG"):
        monitor_logger_v1(plot=str(tmp_path))
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner")
    (tmp_path / "afile").write_text("x")
    stderr = io.StringIO()
    log_step, finalize = monitor_logger_v1(plot=str(tmp_path / "afile" / "c.png"))(nlp, io.StringIO(), stderr)
    log_step(info(20, 0.25, 30.0, {}))
    log_step(info(40, 0.5, 20.0, {}))
    finalize()
    assert stderr.getvalue().count("Stopped drawing") == 1
    # a suffix matplotlib cannot write stops the drawing too; no suffix draws a PNG
    stderr = io.StringIO()
    log_step, finalize = monitor_logger_v1(plot=str(tmp_path / "c.txt"))(nlp, io.StringIO(), stderr)
    log_step(info(20, 0.25, 30.0, {}))
    assert "Stopped drawing" in stderr.getvalue()
    log_step, finalize = monitor_logger_v1(plot=str(tmp_path / "curve"))(nlp, io.StringIO(), io.StringIO())
    log_step(info(20, 0.25, 30.0, {}))
    assert (tmp_path / "curve").read_bytes().startswith(PNG)


def test_spacy_train_finds_the_logger_and_draws_the_run(tmp_path):
    """In a fresh process with no --code, through the entry point: the curve
    and the TensorBoard scores are the run's, as its JSONL log says."""
    corpus = write_gold_corpus(tmp_path)
    assert entry_points(group="spacy_loggers")["spacy_bilstm_crf.MonitorLogger.v1"].load() is \
        registry.loggers.get("spacy_bilstm_crf.MonitorLogger.v1")
    config = Config().from_disk(ROOT / "configs" / "bilstm_crf.cfg", interpolate=False)
    config["training"]["logger"] = {"@loggers": "spacy_bilstm_crf.MonitorLogger.v1", "progress_bar": None,
                                    "output_file": str(tmp_path / "log.jsonl"), "plot": str(tmp_path / "curve.png"),
                                    "tensorboard_dir": str(tmp_path / "tb")}
    config.to_disk(tmp_path / "monitored.cfg")
    run("-m", "spacy", "train", str(tmp_path / "monitored.cfg"), "--paths.train", str(corpus / "train.spacy"),
        "--paths.dev", str(corpus / "dev.spacy"), "--training.max_steps", "40", "--training.eval_frequency", "20",
        "--output", str(tmp_path / "out"))
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged] == [0, 20, 40]
    assert (tmp_path / "curve.png").read_bytes().startswith(PNG)
    written = event_scalars(tmp_path / "tb")
    assert written["dev/ents_f"] == [(row["step"], round(row["scores"]["ents_f"] / 100, 6)) for row in logged]
    assert [step for step, _ in written["dev/ents_per_type/PERSON/f"]] == [0, 20, 40]
    assert written["dev/ents_f"][-1][1] >= 0.9


def test_an_earlier_runs_log_is_kept_aside_and_this_run_logged_whole(tmp_path):
    """ConsoleLogger.v3 keeps an existing output_file and logs nothing; this
    logger keeps it as log.N.jsonl and logs the run, so that the log and the
    curve are the same run's. Resolving the logger (as `debug data` does)
    moves nothing: only a run does."""
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner")
    log = tmp_path / "log.jsonl"
    log.write_text('{"earlier": 1}\n')
    (tmp_path / "log.1.jsonl").write_text('{"earliest": 0}\n')
    setup = monitor_logger_v1(output_file=str(log))
    assert log.read_text() == '{"earlier": 1}\n' and not (tmp_path / "log.2.jsonl").exists()
    stdout = io.StringIO()
    log_step, finalize = setup(nlp, stdout, io.StringIO())
    log_step(info(20, 0.25, 30.0, {}))
    finalize()
    assert (tmp_path / "log.2.jsonl").read_text() == '{"earlier": 1}\n'
    assert (tmp_path / "log.1.jsonl").read_text() == '{"earliest": 0}\n'
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [20]
    assert f"held an earlier run's log: kept as {tmp_path / 'log.2.jsonl'}" in stdout.getvalue()
    assert "Saving logs is disabled" not in stdout.getvalue()
