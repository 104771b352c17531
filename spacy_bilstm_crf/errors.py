"""Error and warning messages, with codes, in spaCy's style."""
import re

from spacy.errors import ErrorsWithCodes


class Warnings(metaclass=ErrorsWithCodes):
    W001 = ("The {name} component was initialized with no entity labels: it will "
            "predict no entities. Pass training examples with entities, or call "
            "`add_label` before `nlp.initialize()`.")


class Errors(metaclass=ErrorsWithCodes):
    E001 = "Unknown tag scheme '{scheme}'. Use one of: {schemes}."
    E002 = ("Invalid entity label {label!r}: a label must be a non-empty string "
            "without whitespace, and not 'O' or '-' (those mean outside and missing).")
    E003 = ("The {name} component's loss is {loss} at update {step}: training has "
            "diverged. Lower `[training.optimizer] learn_rate`, set `grad_clip`, "
            "and check the training data for empty or extreme inputs.")
    E004 = ("The {name} component's model has not been initialized. Call "
            "`nlp.initialize()` (or train the pipeline) before using it.")
    E005 = ("Static vectors were requested (`include_static_vectors = true`) but the "
            "vocab has no vectors. Set `[initialize] vectors` in the config (or pass "
            "`--paths.vectors PATH` to `spacy train`) to a pipeline with vectors, e.g. "
            "GloVe from `python -m spacy_bilstm_crf init-vectors PATH` or other vectors "
            "from `spacy init vectors`, or set `include_static_vectors = false`.")
    E006 = ("The vectors of this vocab are in '{mode}' mode; only 'default' vectors "
            "can be used by spacy_bilstm_crf.PretrainedVectors.")
    E007 = "Cannot shrink the {name} component's output from {old} to {new} tags."
    E008 = ("alternatives_threshold must be a probability in (0, 1], or null for no "
            "alternative spans; got {value!r}.")
    E009 = ("CharWordEmbed has no features to embed a token with: word_width and "
            "shape_width are 0, char_encoder is null and include_static_vectors is "
            "false. Enable at least one of them.")
    E010 = ("The span '{text}' ({start}-{end}, {label}) is both a gold entity and in "
            "doc.spans['{key}'], the spans marked as incorrect (`incorrect_spans_key`). "
            "Remove it from one of them.")
    E011 = ("The label notation {label!r} (a '!' before a label) is not supported: to "
            "say that a span is not an entity of a label, put it in doc.spans[KEY] with "
            "that label and create the component with `incorrect_spans_key = KEY`.")
    E012 = ("spacy_bilstm_crf.MonitorLogger's `{setting}` needs a package that is not "
            "installed: pip install 'spacy-bilstm-crf[{extra}]', or set `{setting} = null` "
            "in [training.logger].")
    E013 = ("[training.logger] plot = {path!r} is a folder: give the path of the PNG "
            "file to draw the learning curve in.")


class FormatError(ValueError):
    """A problem in a user's input file, located at file and line.

    Its message reads "FILE:LINE: what is wrong. What to do." so that the CLI
    can print it as it is, without a traceback.
    """

    def __init__(self, path, line: "int | None", message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


UTF8_BOM = b"\xef\xbb\xbf"


def utf8_bom(data: bytes, encoding: str) -> bool:
    """Whether bytes read in a UTF-8 encoding start with a byte order mark."""
    return data.startswith(UTF8_BOM) and encoding.replace("-", "").lower() in ("utf8", "utf8sig")


def decode(data: bytes, path, encoding: str, keep_bom: bool = False) -> str:
    """Bytes to text, or a FormatError naming the line of the first bad byte.
    A UTF-8 byte order mark is dropped unless keep_bom."""
    if encoding.replace("-", "").lower() == "utf8" and not keep_bom:
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = len(re.findall(rb"\r\n|\r|\n", data[: err.start])) + 1  # LF, CRLF or CR line ends
        raise FormatError(
            path, line,
            f"cannot decode byte {data[err.start:err.start + 1]!r} as {encoding.replace('-sig', '')} "
            f"({err.reason}). Pass the file's encoding with --encoding (e.g. --encoding latin-1).",
        ) from None
    except LookupError:
        raise FormatError(path, None, f"unknown encoding {encoding!r}.") from None


def counted(n: int, noun: str) -> str:
    """'1 document', '3 documents', '1 entity', '2 entities'."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {noun[:-1]}ies" if noun.endswith("y") else f"{n} {noun}s"
