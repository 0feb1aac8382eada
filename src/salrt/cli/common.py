"""What the subcommands share: the parser class, argument types, the run options declared once
(each :class:`~salrt.spec.RunSpec` field with its flag), and the output helpers (stdout for
results, the shared stderr console for progress, warnings and errors)."""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

from salrt.spec import KERNELS, PRECISIONS, RunSpec


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown once: not for options without one (None, off) nor where the help text already
    says what happens by default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action) or text


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"salrt: error: {message}\n")


def number(kind: type, low: float, what: str, strict: bool = False) -> Callable[[str], Any]:
    """An argparse type: ``kind`` (int or float) >= ``low`` (> with ``strict``)."""

    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}") from None
        if v < low or (strict and v == low) or v != v:
            raise argparse.ArgumentTypeError(f"{what} must be {'>' if strict else '>='} {low:g}, got {text}")
        return v

    return parse


POS_INT = number(int, 1, "value")
NONNEG_INT = number(int, 0, "value")
NONNEG_FLOAT = number(float, 0.0, "value")
POS_FLOAT = number(float, 0.0, "value", strict=True)


def bitrate(text: str) -> int:
    """Bits per second: ``2000000``, ``2M``, ``800k`` (as FFmpeg's -b:v)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"invalid bitrate {text!r}: use e.g. 2M, 800k or 2000000")
    v = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]
    if v < 1:
        raise argparse.ArgumentTypeError(f"bitrate must be positive, got {text!r}")
    return int(v)


def shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(x) for x in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid shape {text!r}: use e.g. 3x16x224x384") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"invalid shape {text!r}: dimensions must be positive integers")
    return dims


def steps_value(text: str | int | None) -> int | None:
    """``--steps N`` or ``--steps auto`` (the model's own choice: MUBiC's adaptive count)."""
    from salrt.errors import UsageError

    if text is None or str(text) == "auto":
        return None
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"--steps must be a positive integer or 'auto', got {text!r}") from None
    if n < 1:
        raise UsageError(f"--steps must be >= 1, got {n}")
    return n


def backbone(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"takes NAME=FILE (e.g. s3d=S3D_kinetics400.pt), got {text!r}")
    return name, path


MODEL_HELP = "model name (salrt info --list shows the registry)"


# -- the run options, declared once: RunSpec field -> flag and argparse settings ------------------
@dataclasses.dataclass(frozen=True)
class SpecOption:
    field: str
    flag: str
    kwargs: dict[str, Any]


SPEC_OPTIONS: tuple[SpecOption, ...] = (
    SpecOption("model", "--model", {"default": "diffsal", "help": MODEL_HELP}),
    SpecOption(
        "checkpoint",
        "--checkpoint",
        {"help": "model weights (.pth of the authors, a state dict, or a salrt directory)"},
    ),
    SpecOption(
        "random_weights",
        "--random-weights",
        {"action": "store_true", "help": "run untrained weights (smoke runs, benchmarks)"},
    ),
    SpecOption(
        "backbones",
        "--backbone",
        {
            "action": "append",
            "type": backbone,
            "metavar": "NAME=FILE",
            "help": "load a pretrained backbone (mvit, vggish, s3d, soundnet, clip) over the weights; repeatable",
        },
    ),
    SpecOption(
        "config",
        "--config",
        {
            "default": "paper",
            "help": "model config preset: paper or tiny (a salrt checkpoint directory carries its own)",
        },
    ),
    SpecOption(
        "steps",
        "--steps",
        {"default": "4", "help": "DDIM steps, or 'auto' (MUBiC picks per clip); one-pass models ignore it"},
    ),
    SpecOption("captions", "--captions", {"help": "TAVDiff: captions file or folder (see salrt.captions)"}),
    SpecOption("bpe", "--bpe", {"help": "TAVDiff: CLIP BPE merges file for --captions"}),
    SpecOption("device", "--device", {"default": "cpu", "help": "cpu, cuda or cuda:N"}),
    SpecOption(
        "backend",
        "--backend",
        {
            "default": "auto",
            "help": "execution backend (salrt info --backends lists them); auto: the fastest exact path here "
            "(a server with --url; an export on CPU/GPU; on CPU without --export-dir an export made once into the cache)",
        },
    ),
    SpecOption("export_dir", "--export-dir", {"help": "an export made by salrt export (for the export backends)"}),
    SpecOption("url", "--url", {"help": "a model server: http://HOST:8000 or grpc://HOST:8001 (Triton)"}),
    SpecOption("triton_model", "--triton-model", {"help": "the served model's name (default: --model)"}),
    SpecOption(
        "send",
        "--send",
        {
            "choices": ("frames", "clips"),
            "default": "frames",
            "help": "to a server (Triton): each frame once, the server keeping each stream's window (when its "
            "repository has the frames-once model), or every clip whole",
        },
    ),
    SpecOption(
        "kernels", "--kernels", {"choices": KERNELS, "help": "attention/DDIM kernels (default: triton on cuda)"}
    ),
    SpecOption(
        "precision",
        "--precision",
        {
            "choices": PRECISIONS,
            "help": "inference precision (default: fp32, or the export's): bf16 is the fast approximate path on GPUs "
            "and on CPUs with native bf16",
        },
    ),
    SpecOption(
        "retries",
        "--retries",
        {
            "type": NONNEG_INT,
            "default": 3,
            "help": "reconnects of a lost stream, retries of a model-server request (exponential backoff)",
        },
    ),
    SpecOption(
        "timeout_s",
        "--timeout",
        {"type": POS_FLOAT, "default": 10.0, "help": "seconds a network input or a model server may stall"},
    ),
    SpecOption("seed", "--seed", {"type": int, "default": 0, "help": "seed of the starting noise"}),
    SpecOption("cache_dir", "--cache-dir", {"help": "where auto keeps its exports (default: ~/.cache/salrt)"}),
)
FLAGS = {o.field: o.flag for o in SPEC_OPTIONS}
ALL_FIELDS = tuple(o.field for o in SPEC_OPTIONS)
MODEL_FIELDS = ("model", "checkpoint", "random_weights", "backbones", "config", "device")


def add_spec_args(p: argparse.ArgumentParser, fields: Sequence[str] = ALL_FIELDS, **overrides: Any) -> None:
    """Add the flags of these RunSpec ``fields``; ``overrides``: field -> argparse settings to change."""
    for o in SPEC_OPTIONS:
        if o.field in fields:
            p.add_argument(o.flag, dest=o.field, **{**o.kwargs, **overrides.get(o.field, {})})


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The RunSpec of the parsed flags (fields without a flag keep their defaults)."""
    values = {o.field: getattr(args, o.field) for o in SPEC_OPTIONS if hasattr(args, o.field)}
    values["backbones"] = tuple(values.get("backbones") or ())
    if "steps" in values:
        values["steps"] = steps_value(values["steps"])
    return RunSpec(**values)


def flag_of(field: str) -> str:
    """The flag a RunSpec field is given with (the field's name where it has none)."""
    return FLAGS.get(field, field)


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's options, for the JSON files it writes."""
    return {k: v for k, v in vars(args).items() if k not in ("func", "console")}


# -- output ---------------------------------------------------------------------------------------
def say(text: str) -> None:
    """A result line on stdout."""
    print(text, flush=True)


def info(text: str) -> None:
    from salrt.console import log

    log.info("%s", text)


def warn(text: str) -> None:
    from salrt.console import log

    log.warning("%s", text)


def error(text: str) -> None:
    from salrt.console import log

    log.error("%s", text)


def notes(args: argparse.Namespace, prefix: str) -> Callable[[str], None]:
    """Progress notes (``salrt run: ...``) unless ``--quiet``."""
    return (lambda s: None) if getattr(args, "quiet", False) else (lambda s: info(f"{prefix}: {s}"))


def new_bar(args: argparse.Namespace, desc: str, total: int | None, unit: str) -> Any:
    from salrt.console import Bar

    return Bar(desc, total, unit, args.quiet, args.console)


def track(args: argparse.Namespace, items: Any, desc: str, total: int | None = None) -> Any:
    from salrt.console import track as console_track

    return console_track(items, len(items) if total is None else total, desc, args.quiet, args.console)


def output_arg(p: argparse.ArgumentParser, default: str | None, what: str) -> None:
    p.add_argument("-o", "--output", default=default, required=default is None, help=what)
    p.add_argument("--out", dest="output", help=argparse.SUPPRESS)  # the older spelling


def roi_args(p: argparse.ArgumentParser) -> None:
    """The ROI mapping's flags (salrt encode, salrt rd); unset ones keep the encoder's default."""
    g = p.add_argument_group("ROI mapping (defaults: the encoder's, see docs/encode.md)")
    g.add_argument("--roi-strength", type=NONNEG_FLOAT, help="offset per standard deviation of saliency")
    g.add_argument("--max-offset", type=POS_FLOAT, help="largest quantiser decrease, in the encoder's steps")
    g.add_argument("--floor", type=NONNEG_FLOAT, help="largest quantiser increase (nothing is starved)")
    g.add_argument("--smoothing", type=float, help="temporal EMA of the offsets (0..1), restarted at scene cuts")
    g.add_argument("--dilation", type=NONNEG_INT, help="pixels of dilation of the saliency map")


def quiet_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress display or progress notes (warnings and errors are still shown)",
    )


def ray_args(p: argparse.ArgumentParser, inputs: bool = True) -> None:
    g = p.add_argument_group("Ray (pip install 'salrt[ray]')")
    g.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="distribute the inputs over a Ray cluster (HOST:PORT, ray://HOST:PORT, auto; none: a local one)",
    )
    if inputs:
        g.add_argument("--input-list", metavar="FILE", help="more inputs, one per line (# comments)")
    g.add_argument(
        "--ray-workers",
        dest="workers_ray",
        type=POS_INT,
        help="model workers (default: one per GPU, else one per --worker-cpus cores)",
    )
    g.add_argument("--worker-cpus", type=POS_FLOAT, default=1.0, help="CPU cores per model worker")
    g.add_argument("--worker-gpus", type=NONNEG_FLOAT, help="GPUs per model worker (default: 1 with --device cuda)")
    g.add_argument("--resume", action="store_true", help="skip inputs whose outputs are complete and valid")


def ray_options(args: argparse.Namespace) -> Any:
    """The Ray settings of the parsed flags (:class:`salrt.app.jobs.RayOptions`)."""
    from salrt.app.jobs import RayOptions

    return RayOptions(
        address=None if args.ray == "local" else args.ray,
        workers=args.workers_ray,
        worker_cpus=args.worker_cpus,
        worker_gpus=args.worker_gpus,
        resume=args.resume,
    )


def gather_inputs(args: argparse.Namespace, what: str = "INPUT") -> None:
    """``args.inputs`` from the positional inputs and ``--input-list``; ``--ray`` takes an address
    only when the word after it looks like one (``salrt run --ray a.mp4 b.mp4`` reads a.mp4 as an
    input), so ``args.ray`` ends as None (no Ray), ``"local"`` or the address."""
    import os.path

    from salrt.errors import UsageError

    ray = getattr(args, "ray", None)
    looks_like_address = ray is not None and (
        ray == "auto"
        or ray.startswith("ray://")
        or (re.fullmatch(r"[\w.\-]+:\d+", ray) is not None and not os.path.exists(ray))
    )
    if ray not in (None, "local") and not looks_like_address:
        args.inputs = [ray, *args.inputs]
        args.ray = "local"
    if getattr(args, "input_list", None):
        from salrt.app.jobs import read_input_list

        args.inputs = [*args.inputs, *read_input_list(args.input_list)]
    if not args.inputs:
        raise UsageError(f"give at least one {what} (or --input-list FILE)")
