"""Prediction at scale: the record pipeline (records.py → shards.py) run by
one of two engines that label whole partitions with the same code:

- "process": this process (`--n-process 1`), or a pool of processes, each
  loading the pipeline once and labelling whole partitions;
- "ray": Ray Data `map_batches` over the partitions still to do, with a pool
  of actors (one per worker) that load the pipeline once, set torch's threads
  to their CPUs and run `nlp.pipe`. A killed actor is restarted and its
  partition retried by Ray.

Either way the driver (this process) is the only writer: each partition
comes back whole — as its encoded shard, made by the workers with the same
encoder as one process uses, or as rows for BRAT and single-file outputs — and
the sink writes it once (a partition delivered twice, by a retried task, is
ignored), so every document is written exactly once.
"""
import json
import logging
import os
import pickle
import resource
import signal
import socket
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import spacy

from .errors import FormatError
from .plan import fingerprint, model_fingerprint, plan
from .records import Options, Partition, annotate, input_kind, read_partition
from .shards import Sink, encode_shard, open_sink

ENGINES = ("process", "ray")
RAY_MISSING = "install the [ray] extra: pip install 'spacy-bilstm-crf[ray]'"
# test hooks: an actor SIGKILLs itself once (the marker file says it did);
# the driver exits hard after writing this many shards (a crash)
KILL_ACTOR_ONCE = "SPACY_BILSTM_CRF_TEST_KILL_ACTOR_ONCE"
EXIT_AFTER_SHARDS = "SPACY_BILSTM_CRF_TEST_EXIT_AFTER_SHARDS"


def load_pipeline(model: str, gpu_id: int = -1, threads: Optional[int] = None):
    """spacy.load, on GPU gpu_id when >= 0 (Thinc's PyTorch shim then runs
    the torch layers on CUDA), with torch limited to `threads` threads."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    require_gpu(gpu_id)
    return spacy.load(model)


def require_gpu(gpu_id: int) -> None:
    """Use GPU gpu_id (none if negative), or a FormatError saying what to install."""
    if gpu_id < 0:
        return
    try:
        spacy.require_gpu(gpu_id)
    except ValueError as err:  # thinc: "Cannot use GPU, CuPy is not installed"
        raise FormatError("--gpu-id", None, f"{err}: pip install 'spacy-bilstm-crf[cuda12x]' on a machine with "
                                            "CUDA 12, or leave --gpu-id out to run on the CPU.") from None


def predict_records(model: str, input_path: Path, output_path: Path, *, fmt: str, options: Options,
                    engine: str = "process", batch_size: int = 256, n_process: int = 1, gpu_id: int = -1,
                    address: Optional[str] = None, workers: Optional[int] = None, cpus_per_worker: int = 1,
                    progress: Optional[Callable] = None, labels: Callable = lambda nlp: (),
                    overwrite: bool = False, score_notes: bool = False) -> Dict:
    """Label an input of records and write one shard per partition, skipping
    those already written (score_notes: BRAT output gets each entity's
    probability as a note). Returns counts: partitions and documents
    written, entities, errors, partitions skipped as complete."""
    check_engine(engine)
    input_path = Path(input_path).resolve()  # workers may run elsewhere: paths must be absolute
    model = str(Path(model).resolve()) if Path(model).exists() else str(model)
    sink = open_sink(Path(output_path), fmt, options.encoding, overwrite, score_notes)
    kind = input_kind(input_path) or "txt"
    key = {"input": str(input_path), "fingerprint": fingerprint(input_path, kind) if input_path.exists() else None,
           "model": model, "model files": model_fingerprint(model), "format": fmt,
           # ids_as_text in the key only when set (BRAT output): a JSONL or Parquet job planned before it
           # existed resumes, a BRAT job planned without it (ids compared by type) is another job
           "options": {k: v for k, v in options.__dict__.items() if k != "ids_as_text" or v}}
    if fmt == "brat":
        key["score notes"] = score_notes
    parts = sink.plan(key, lambda: plan(input_path, options))
    pending = [p for p in parts if not sink.done(p.name)]
    skipped = len(parts) - len(pending)
    bar = progress(sum(p.stop - p.start for p in pending)) if progress else None
    deliver = _deliverer(sink, bar)
    encode = sink.fmt if sink.encodes else None
    nlp = None
    workers_stats: Dict = {}
    if engine == "ray" and pending:
        run_ray(model, pending, deliver, options=options, batch_size=batch_size, gpu_id=gpu_id, address=address,
                workers=workers, cpus_per_worker=cpus_per_worker, encode=encode, stats=workers_stats)
    elif pending:
        nlp = run_process(model, pending, deliver, options=options, batch_size=batch_size, n_process=n_process,
                          gpu_id=gpu_id, threads=cpus_per_worker, encode=encode)
    if bar is not None:
        bar.close()
    missing = [p.name for p in pending if not sink.done(p.name)]
    if missing:
        raise RuntimeError(f"{len(missing)} partitions were not written (first: {missing[0]}); "
                           "run the same command again to finish them.")
    if fmt == "brat":
        nlp = nlp or load_pipeline(model)
    summary = dict(sink.close(labels(nlp) if nlp is not None else ()))
    summary.update(skipped=skipped, total_partitions=len(parts), workers=list(workers_stats.values()))
    return summary


def check_engine(engine: str) -> None:
    """A FormatError for an engine that is not one of ENGINES."""
    if engine not in ENGINES:
        raise FormatError("--engine", None, f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}.")


def label(nlp, part: Partition, options: Options, batch_size: int, encode: Optional[str]) -> Dict:
    """What a worker returns for a partition: its shard encoded in `encode`'s
    format, or its rows and errors."""
    rows, errors = annotate(nlp, read_partition(part, options), batch_size=batch_size)
    if encode:
        return {"encoded": encode_shard(part, rows, errors, encode)}
    return {"rows": rows, "errors": errors}


def _deliverer(sink: Sink, bar) -> Callable[[Partition, Dict], None]:
    exit_after = int(os.environ.get(EXIT_AFTER_SHARDS) or 0)

    def deliver(part: Partition, result: Dict) -> None:
        if "encoded" in result:
            written = sink.write_encoded(part, result["encoded"])
        else:
            written = sink.write(part, result["rows"], result["errors"])
        if written and bar is not None:
            bar.update(part.stop - part.start)
        if exit_after and sink.written["partitions"] >= exit_after:
            os._exit(3)  # test hook: a crash, nothing cleaned up

    return deliver


# one process, or a pool of processes -------------------------------------------

def run_process(model: str, parts: List[Partition], deliver: Callable, *, options: Options, batch_size: int,
                n_process: int, gpu_id: int, threads: int = 1, encode: Optional[str] = None):
    """Label the partitions here (returns the pipeline), or in a pool of
    n_process processes that each label whole partitions (returns None).
    Every labelling process runs torch on `threads` threads, as each Ray actor
    does: MKL's float32 products can differ in their last bits with the
    number of threads, so equal thread counts are what makes every engine
    write the same bytes."""
    if n_process <= 1:
        nlp = load_pipeline(model, gpu_id, threads=threads)
        for part in parts:
            deliver(part, label(nlp, part, options, batch_size, encode))
        return nlp
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # never fork a process that has run torch
    initargs = (model, gpu_id, threads, batch_size, options, encode)
    with context.Pool(n_process, initializer=_pool_init, initargs=initargs) as pool:
        for part, result in pool.imap_unordered(_pool_work, parts):
            deliver(part, result)
    return None


_POOL: Dict = {}


def _pool_init(model: str, gpu_id: int, threads: int, batch_size: int, options: Options,
               encode: Optional[str]) -> None:
    _POOL.update(nlp=load_pipeline(model, gpu_id, threads=threads), batch_size=batch_size, options=options, encode=encode)


def _pool_work(part: Partition) -> Tuple[Partition, Dict]:
    return part, label(_POOL["nlp"], part, _POOL["options"], _POOL["batch_size"], _POOL["encode"])


# Ray -------------------------------------------------------------------------

class Annotator:
    """A Ray Data actor: loads the pipeline once, then labels one partition
    per call; the partition goes back to the driver whole, in one row (its
    encoded shard, or its rows: see `label`), with figures about the actor
    (load time, busy time, peak RSS)."""

    def __init__(self, model: str, gpu_id: int, threads: int, batch_size: int, options: Dict,
                 encode: Optional[str] = None, kill_marker: Optional[str] = None):
        start = time.perf_counter()
        self.nlp = load_pipeline(model, 0 if gpu_id >= 0 else -1, threads=threads)  # Ray sets CUDA_VISIBLE_DEVICES
        self.batch_size = batch_size
        self.options = Options(**options)
        self.encode = encode
        self.kill_marker = kill_marker
        self.stats = {"pid": os.getpid(), "host": socket.gethostname(), "load_s": time.perf_counter() - start}
        self.last_end = None  # end of the previous call: the time between calls is idle

    def __call__(self, batch):
        import pyarrow as pa

        names, payloads, stats = [], [], []
        idle = time.perf_counter() - self.last_end if self.last_end is not None else 0.0
        for data in batch.column("partition").to_pylist():
            start = time.perf_counter()
            part = Partition.from_dict(json.loads(data))
            result = label(self.nlp, part, self.options, self.batch_size, self.encode)
            self._maybe_die()
            names.append(part.name)
            payloads.append(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            stats.append(json.dumps({**self.stats, "busy_s": time.perf_counter() - start, "idle_s": idle,
                                     "peak_rss_mb": peak_mb}))
            idle = 0.0
        self.last_end = time.perf_counter()
        return pa.table({"partition": pa.array(names, pa.string()), "payload": pa.array(payloads, pa.binary()),
                         "worker": pa.array(stats, pa.string())})

    def _maybe_die(self) -> None:
        """Test hook: the first actor to get here kills its own process, its
        partition labelled but not returned."""
        if not self.kill_marker:
            return
        try:
            os.close(os.open(self.kill_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)


def run_ray(model: str, parts: List[Partition], deliver: Callable, *, options: Options, batch_size: int, gpu_id: int,
            address: Optional[str], workers: Optional[int], cpus_per_worker: int, encode: Optional[str] = None,
            stats: Optional[Dict] = None) -> None:
    """Label the partitions on a Ray cluster (address), or on a Ray started
    here; the driver writes each partition as it comes back. `stats` gets
    each actor's figures (see _add_stats)."""
    stats = {} if stats is None else stats
    ray = _import_ray()
    local = not address and not os.environ.get("RAY_ADDRESS")
    if not Path(model).exists() and not spacy.util.is_package(model) and (local or os.sep in model):
        # here rather than in every actor (a package installed only on a cluster's workers is fine)
        from spacy.errors import Errors as SpacyErrors

        raise OSError(SpacyErrors.E050.format(name=model))
    if not local:
        _use_token_auth()
    init: Dict = {"address": address or (None if not local else "local"), "logging_level": logging.ERROR,
                  "log_to_driver": True}
    if local:
        init.update(num_cpus=max(os.cpu_count() or 1, (workers or 1) * cpus_per_worker), include_dashboard=False)
    ray.init(**init)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        if not workers:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_worker))
        part_of = {p.name: p for p in parts}
        items = [{"partition": json.dumps(p.to_dict())} for p in parts]
        settings = {"model": str(model), "gpu_id": gpu_id, "threads": cpus_per_worker, "batch_size": batch_size,
                    "options": dict(options.__dict__), "encode": encode, "kill_marker": os.environ.get(KILL_ACTOR_ONCE)}
        # Ray Data's actors restart when killed and retry their task (max_restarts and
        # max_task_retries are -1 by default). Two partitions in flight per actor: the
        # next one waits at the actor (with one, a busy driver left actors idle a third
        # of the time); a killed actor loses at most two partitions' work
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            Annotator,
            fn_constructor_kwargs=settings,
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(parts)), max_tasks_in_flight_per_actor=2),
            num_cpus=cpus_per_worker,
            num_gpus=1 if gpu_id >= 0 else None,
        )
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            columns = (batch.column(c).to_pylist() for c in ("partition", "payload", "worker"))
            for name, payload, worker in zip(*columns):
                deliver(part_of[name], pickle.loads(payload))
                _add_stats(stats, json.loads(worker))
    finally:
        ray.shutdown()


def _use_token_auth() -> None:
    """`ray start` turns on token authentication and saves the token in
    ~/.ray/auth_token, but a client given an address sends it only in token
    mode: turn that on when a token is at hand, as Ray itself does for a
    cluster it finds on its own (RAY_AUTH_MODE, when set, decides)."""
    try:
        from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
    except ImportError:  # a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _add_stats(stats: Dict, worker: Dict) -> None:
    """Per actor process: model load seconds, partitions, busy seconds, idle
    seconds between calls, peak RSS."""
    seen = stats.setdefault((worker["host"], worker["pid"]), {**worker, "partitions": 0, "busy_s": 0.0, "idle_s": 0.0})
    seen["partitions"] += 1
    seen["busy_s"] += worker["busy_s"]
    seen["idle_s"] += worker["idle_s"]
    seen["peak_rss_mb"] = max(seen["peak_rss_mb"], worker["peak_rss_mb"])


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise FormatError("--engine ray", None, RAY_MISSING) from None
    return ray
