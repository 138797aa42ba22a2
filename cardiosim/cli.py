"""Command line: ``cardiosim generate | info | recipe init|check | prior fit|rhythm | plot | bench``.

Errors are reported as one line on stderr (``cardiosim: error: ...``) with exit status
2; no partial output file is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from ._version import __version__
from .errors import CardiosimError


_log = logging.getLogger("cardiosim")


def _shipped_devices() -> list[str]:
    """Names of the shipped device profiles (their TOML files; read without importing the
    device package, so that ``--help`` stays fast)."""
    return sorted(p.stem for p in (Path(__file__).parent / "device" / "profiles").glob("*.toml"))


def _configure_logging(args) -> None:
    """--verbose: DEBUG records of every cardiosim logger on stderr; --quiet: errors only."""
    level = logging.DEBUG if getattr(args, "verbose", False) else logging.ERROR if args.quiet else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
    _log.handlers[:] = [handler]
    _log.setLevel(level)
    _log.propagate = False
    if args.quiet:
        import warnings
        warnings.simplefilter("ignore")


#: Warnings of one kind printed in full before the rest are only counted (a folder of real
#: records can raise one unmapped-code warning per record).
_WARNINGS_SHOWN_PER_KIND = 3


class _CliWarnings:
    """Warnings as one line each, ``cardiosim CMD: warning: message`` (not Python's two lines
    with the source line that raised it), at most :data:`_WARNINGS_SHOWN_PER_KIND` per
    category, then counted and summarised once when the command ends."""

    def __init__(self, command: str, stream=None):
        self.command, self.stream = command, stream
        self.counts: dict = {}

    def show(self, message, category, filename, lineno, file=None, line=None):
        name = category.__name__
        self.counts[name] = self.counts.get(name, 0) + 1
        if self.counts[name] <= _WARNINGS_SHOWN_PER_KIND:
            print(f"cardiosim {self.command}: warning: {message}", file=self.stream or sys.stderr)

    def summary(self):
        for name, n in self.counts.items():
            if n > _WARNINGS_SHOWN_PER_KIND:
                print(f"cardiosim {self.command}: warning: {n - _WARNINGS_SHOWN_PER_KIND} more {name} "
                      f"not shown ({n} in all)", file=self.stream or sys.stderr)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, naming the subcommand and --help."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _int_at_least(minimum: int):
    """argparse type: an integer >= ``minimum``, with a one-line message otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value

    return parse


_positive_int = _int_at_least(1)


def _weights(text: str) -> dict:
    """``'walk'`` or ``'rest=0.5,walk=0.3'`` -> ``{name: weight}`` (an argparse type: a bad
    item is one line naming it)."""
    out = {}
    for item in text.split(","):
        name, eq, w = item.strip().partition("=")
        if not name:
            raise argparse.ArgumentTypeError(f"empty activity in {text!r}")
        try:
            weight = float(w) if eq else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"weight of {name!r} is not a number: {w!r}") from None
        if not (weight >= 0.0 and weight < float("inf")):
            raise argparse.ArgumentTypeError(f"weight of {name!r} must be a finite number >= 0, got {w!r}")
        out[name] = weight
    return out


_nonneg_int = _int_at_least(0)


def build_parser() -> argparse.ArgumentParser:
    from .simulate import FORWARD_MODELS

    parser = _Parser(prog="cardiosim", description="Physics-based simulator of wearable (shirt) ECG.")
    parser.add_argument("--version", action="version", version=f"cardiosim {__version__}")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("--quiet", "-q", action="store_true", help="print only errors (no summary, no progress bar)")
    loud.add_argument("--verbose", "-v", action="store_true", help="log every step (logger 'cardiosim') on stderr")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    g = sub.add_parser("generate", help="generate a labeled synthetic shirt-ECG dataset",
                       description="Generate a labeled synthetic shirt-ECG dataset (netCDF). Options override "
                                   "the recipe; with no recipe the embedded defaults are used.")
    g.add_argument("--recipe", type=Path, help="recipe TOML file (see 'cardiosim recipe init')")
    g.add_argument("--output", "-o", type=Path, default=Path("shirt_ecg.nc"),
                   help="a .nc file, or a directory for sharded output (default: shirt_ecg.nc)")
    g.add_argument("--records", "-n", type=_positive_int, help="number of records (ODE source)")
    g.add_argument("--duration", type=_positive_float, help="seconds per record")
    g.add_argument("--fs", "--sampling-rate", dest="fs", type=_positive_float,
                   help="output sampling rate in Hz (default: the device's)")
    g.add_argument("--device", help=f"device profile: {', '.join(_shipped_devices())} or a TOML path")
    g.add_argument("--seed", type=_nonneg_int, help="master seed")
    g.add_argument("--source", help="cardiac sources: 'ode' (default), 'ptbxl:PATH', 'wfdb:PATH' or 'sph:PATH'")
    g.add_argument("--variants", type=_positive_int, help="shirt variants per source record")
    g.add_argument("--shard-size", type=_positive_int, help="records per shard (directory output)")
    g.add_argument("--workers", "-j", type=_positive_int, default=1, help="local worker processes")
    g.add_argument("--scheduler", help="dask.distributed scheduler address, or 'local' for a LocalCluster")
    g.add_argument("--forward", choices=FORWARD_MODELS, help="volume conductor model")
    g.add_argument("--activities", type=_weights, metavar="NAME[=W],...",
                   help="what the wearer does, one activity drawn per record by weight: rest, arms, walk, run, "
                        "squats (e.g. 'walk' or 'rest=0.5,walk=0.3,run=0.2'; default rest)")
    g.add_argument("--electrode", choices=("device", "gel", "dry", "textile"),
                   help="electrode type, whose fitted noise per activity the record carries (default 'device': "
                        "the device's own -- textile for shirts and the strap, gel for patch, Holter and 12-lead, "
                        "dry for the handheld)")
    g.add_argument("--mesh", help="your torso mesh (OBJ, PLY, STL, VTK; LPS frame) instead of the parametric torso")
    g.add_argument("--mesh-units", choices=("m", "cm", "mm"), help="unit of --mesh coordinates (required with it)")
    g.add_argument("--electrodes", help="electrode coordinates (CSV name,x,y,z or TOML) replacing the device layout")
    g.add_argument("--electrode-units", choices=("m", "cm", "mm"),
                   help="unit of --electrodes (default: the file's own, else --mesh-units)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    g.add_argument("--no-progress", action="store_true",
                   help="do not show the progress bar (shown only when stderr is a terminal)")
    g.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                   help="print only errors")

    i = sub.add_parser("info", help="summarise a dataset file or shard directory")
    i.add_argument("path", type=Path)
    i.add_argument("--verify", action="store_true",
                   help="check every shard's SHA-256 (done by default up to 256 MB; sizes always)")

    r = sub.add_parser("recipe", help="work with recipe files")
    rsub = r.add_subparsers(dest="recipe_command", parser_class=_Parser, metavar="ACTION")
    ri = rsub.add_parser("init", help="write a commented default recipe")
    ri.add_argument("path", type=Path, nargs="?", default=Path("recipe.toml"))
    ri.add_argument("--overwrite", action="store_true")
    rc = rsub.add_parser("check", help="validate a recipe file")
    rc.add_argument("path", type=Path)

    pr = sub.add_parser("prior", help="fit the ODE's normal-beat or class prior to your own records")
    prsub = pr.add_subparsers(dest="prior_command", parser_class=_Parser, metavar="ACTION")
    pf = prsub.add_parser("fit", help="fit a NORM (or --class) patient prior to real 12-lead records",
                          description="Fit the ODE's NORM patient prior (cardiosim.ode.fit.fit_records_prior) "
                                      "to the records labelled only NORM of a real source; use it with "
                                      "'[source] prior = \"PATH\"' in a recipe. With --class C, fit the prior of "
                                      "class C to the records whose codes contain C's (PTB-XL SCP or CinC 2021 "
                                      "SNOMED CT codes, cardiosim.ode.CLASSES); use it with '[source] "
                                      "class_priors = {C = \"PATH\"}'.")
    pf.add_argument("--source", required=True, help="'ptbxl:PATH', 'sph:PATH' or 'wfdb:PATH'")
    pf.add_argument("--output", "-o", type=Path, required=True, help="prior file (.json or .npz)")
    pf.add_argument("--class", dest="cls", default="",
                    help="morphology class to fit (LVH, TINV, RBBB, LBBB, STE, STD; default: NORM)")
    pf.add_argument("--max-records", type=_positive_int, default=200, help="records to fit (default 200)")
    pf.add_argument("--exclude-folds", default="9,10",
                    help="PTB-XL strat_fold values left out for evaluation (default 9,10; '' for none)")
    pf.add_argument("--seed", type=_nonneg_int, default=0)
    pf.add_argument("--proposal-draws", type=_nonneg_int, default=60_000,
                    help="draws per round of the sampling proposal's fit (0: no proposal)")
    pf.add_argument("--basis", choices=("common", "own"), default=None,
                    help="fit every record on one common Gaussian basis (default for --class) or each on "
                         "its own (default for NORM); see cardiosim.ode.fit.fit_records_prior")

    prr = prsub.add_parser("rhythm", help="fit the rhythm prior (AF rate and irregularity, ectopic coupling) to "
                                          "annotated records",
                           description="Fit the ODE's rhythm prior (cardiosim.ode.rhythm_prior) to WFDB records with "
                                       "beat annotations and rhythm episodes ('(AFIB', '(N' aux notes, as PhysioNet's "
                                       "AF databases and MIT-BIH have): the AF ventricular rate and RR irregularity "
                                       "of every 10-s AF window, the coupling of PVCs and PACs; use it with "
                                       "'[source] rhythm_prior = \"PATH\"' in a recipe.")
    prr.add_argument("records", nargs="+", type=Path,
                     help="WFDB records (path with or without .hea) or folders of them")
    prr.add_argument("--output", "-o", type=Path, required=True, help="rhythm prior file to write (.json)")
    prr.add_argument("--annotator", default="atr", help="annotation file extension (default atr)")

    rf = sub.add_parser("refine", help="learn from your unlabeled device recordings: train / apply a refiner",
                        description="A SimGAN-style refiner (cardiosim.torch.refine) that makes simulated records "
                                    "look like your own device's; generate with it through '[refine] model = "
                                    "\"refiner.pt\"' in a recipe, or refine an existing dataset with 'apply'.")
    rfsub = rf.add_subparsers(dest="refine_command", parser_class=_Parser, metavar="ACTION")
    rt = rfsub.add_parser("train", help="train a refiner from a simulated dataset and your device recordings")
    rt.add_argument("--dataset", type=Path, required=True,
                    help="simulated cardiosim dataset (store_clean = true enables the physics term)")
    rt.add_argument("--recordings", type=Path, required=True,
                    help="folder (or file) of your unlabeled WFDB (.hea) / netCDF (.nc) device recordings")
    rt.add_argument("--output", "-o", type=Path, required=True, help="refiner file to write (.pt)")
    rt.add_argument("--steps", type=_positive_int, default=300, help="training steps (default 300)")
    rt.add_argument("--batch", type=_int_at_least(2), default=16, help="records per step (default 16)")
    rt.add_argument("--seed", type=_nonneg_int, default=0)
    rt.add_argument("--no-physics", action="store_true",
                    help="train without the Euler-loss physics term (without clean_ecg in the dataset it is off "
                         "anyway, with a warning)")
    rt.add_argument("--free-average-beat", action="store_true",
                    help="do not project refinements onto changes with a zero beat-locked average (by default "
                         "the refined record keeps the simulated average beat, which defines the label, exactly; "
                         "needs beat_r_peak in the dataset); only --lambda-beat then holds the average beat back")
    rt.add_argument("--lambda-beat", type=float, default=2.0, metavar="W",
                    help="weight of the beat-locked penalty on the average beat's change, used with "
                         "--free-average-beat (default 2.0; 0 turns it off)")
    rt.add_argument("--max-slope-fraction", type=float, default=None, metavar="F",
                    help="bound each refinement's spatial velocity by F times the record's own QRS spatial "
                         "velocity, so the refiner cannot add QRS-like content a detector takes for beats "
                         "(default 0.25 when the dataset has beat_r_peak; 0 turns the bound off)")
    rt.add_argument("--max-amplitude-fraction", type=float, default=None, metavar="F",
                    help="bound each refinement's amplitude by F times the record's own QRS peak-to-peak, which "
                         "bounds how far the median beat can move (default 0.05 with beat_r_peak; 0: off)")
    rt.add_argument("--mode", choices=("record", "residual"), default=None,
                    help="what the network refines: 'record' (the whole simulated record) or 'residual' (only "
                         "ecg - clean_ecg, the part the physics does not model; needs store_clean = true). "
                         "Default: the package's default mode when the dataset stores clean_ecg, else 'record'")
    rt.add_argument("--overwrite", action="store_true", help="replace an existing refiner file")
    ra = rfsub.add_parser("apply", help="refine every record of an existing dataset into a new .nc file")
    ra.add_argument("--dataset", type=Path, required=True, help="cardiosim dataset (file or shard directory)")
    ra.add_argument("--refiner", type=Path, required=True, help="refiner file (.pt) from 'cardiosim refine train'")
    ra.add_argument("--output", "-o", type=Path, required=True, help="output file (.nc)")
    ra.add_argument("--no-simulated", action="store_true", help="do not keep the unrefined record as ecg_simulated")
    ra.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    b = sub.add_parser("bench", help="measure generator speed on this machine (records/s)")
    b.add_argument("--records", type=_positive_int, default=32)
    b.add_argument("--duration", type=_positive_float, default=10.0)

    w = sub.add_parser("warmup", help="compile the numba kernels into numba's cache now (once per install)",
                       description="Compile the kernels a default dataset, real-record sources and the torch "
                                   "transform use, in parallel processes, so the first generate (or each of "
                                   "several workers) loads them instead of compiling. Run it when building a "
                                   "container image or after installing on a cluster node; NUMBA_CACHE_DIR "
                                   "chooses where the cache goes.")
    w.add_argument("--jobs", "-j", type=_positive_int, default=2, help="processes to compile in (default: 2)")

    e = sub.add_parser("export", help="export a dataset to WFDB records with annotations",
                       description="Write one WFDB record per dataset record (.hea/.dat, mV) with its "
                                   "ground-truth beat (.atr) and wave (.wave) annotations, and a RECORDS list.")
    e.add_argument("path", type=Path, help="dataset file or shard directory")
    e.add_argument("--format", choices=("wfdb",), default="wfdb")
    e.add_argument("--output", "-o", type=Path, required=True, help="directory to create")
    e.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")

    p = sub.add_parser("plot", help="plot one record of a dataset to PNG")
    p.add_argument("path", type=Path)
    p.add_argument("--record", type=_nonneg_int, default=0, help="record position in the dataset")
    p.add_argument("--output", "-o", type=Path, help="PNG file (default: <dataset>-record<N>.png)")

    m = sub.add_parser("measure", help="measure a recording's noise the way the textile noise model is fitted",
                       description="Per lead: noise-to-QRS ratio of every 2-s segment (the non-cardiac residual's RMS "
                                   "over the median beat's QRS peak-to-peak), its artefact grade 1-4 by the grading "
                                   "rule fitted to the textile recordings' graders, the residual's kurtosis, rail "
                                   "hits and contact loss. Compare your device's recordings with the README's "
                                   "textile table, or with a simulated dataset (give the .nc file and --record).")
    m.add_argument("path", type=Path, help="a WFDB record (path with or without .hea) or a cardiosim dataset (.nc or "
                                           "shard directory)")
    m.add_argument("--record", type=_nonneg_int, help="record position, for a dataset")
    m.add_argument("--channel", action="append", help="lead or channel name to measure (repeatable; default all)")
    m.add_argument("--json", type=Path, help="also write the full measures (per segment too) to this JSON file")

    nz = sub.add_parser("noise", help="fit the textile noise model to your own device's recordings",
                        description="Fit one electrode x activity cell of the activity noise model (level, its "
                                    "spread and bursts, spectrum) to recordings of your device, measured as "
                                    "the shipped fit's textile recordings were; the level is calibrated by "
                                    "simulating your device profile. No labels needed; any unit. Use the "
                                    "result with [simulation.noise] textile_fit = \"FILE\" in a recipe.")
    nzsub = nz.add_subparsers(dest="noise_command", parser_class=_Parser, metavar="ACTION")
    nf = nzsub.add_parser("fit", help="fit one electrode x activity cell to WFDB recordings")
    nf.add_argument("recordings", nargs="+", type=Path, help="WFDB records (path with or without .hea)")
    nf.add_argument("--electrode", required=True, choices=("gel", "dry", "textile"))
    nf.add_argument("--activity", required=True, choices=("rest", "arms", "walk", "run", "squats"))
    nf.add_argument("--output", "-o", type=Path, required=True, help="fit file to write (JSON)")
    nf.add_argument("--channel", default="0", help="channel of the records to read: index or name (default 0)")
    nf.add_argument("--device", default="chest_strap_500hz",
                    help="device profile the calibration simulates (default chest_strap_500hz)")
    nf.add_argument("--lead", default="0",
                    help="lead of --device matching the channel: index or name, e.g. II (default 0)")
    nf.add_argument("--base", type=Path, help="fit whose other cells are kept (default: the shipped fit)")
    nf.add_argument("--calibration-records", type=_positive_int, default=24,
                    help="simulated records of the calibration panel (default 24)")
    nf.add_argument("--seed", type=_nonneg_int, default=0, help="calibration panel seed (default 0)")

    s = sub.add_parser("sim2real", help="sim-to-real benchmark: train on simulated data, test on real recordings",
                       description="Train the same small model under each condition (clean, classic augmentation, "
                                   "physics, real) and score it on real recordings ($CARDIOSIM_DATA).")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", choices=("af", "quality", "beats"))
    which.add_argument("--all", action="store_true", help="every task, plus summary.md and sim2real.png")
    s.add_argument("--output", "-o", type=Path, default=Path("report"), help="report folder (default: report/)")
    s.add_argument("--budget", choices=("full", "quick"), default="full", help="quick: seconds, for development")
    s.add_argument("--conditions", help="comma-separated condition keys (default: all registered)")
    s.add_argument("--data", type=Path, help="folder of real recordings (default: $CARDIOSIM_DATA)")
    return parser


def _recipe_from_args(args):
    from .dataset import Recipe
    from .errors import ConfigError

    recipe = Recipe.read(args.recipe) if args.recipe else Recipe()
    data = recipe.to_dict()
    for key, attr in (("records", "records"), ("duration", "duration"), ("seed", "seed"), ("device", "device"),
                      ("forward", "forward")):
        value = getattr(args, attr)
        if value is not None:
            data[key] = value
    if args.fs is not None:
        data["sampling_rate"] = args.fs
    if args.source is not None:
        kind, _, path = args.source.partition(":")
        data["source"]["kind"] = kind
        data["source"]["path"] = path
        if kind != "ode" and args.variants is None and not args.recipe:
            data["source"]["variants"] = 10
    if args.variants is not None:
        data["source"]["variants"] = args.variants
    if args.shard_size is not None:
        data["output"]["shard_size"] = args.shard_size
    if args.activities is not None:
        data["simulation"]["activities"] = args.activities
    if args.electrode is not None:
        data["simulation"]["noise"]["electrode"] = args.electrode
    if args.mesh is not None and args.mesh_units is None and not data["body"].get("units"):
        raise ConfigError(f"--mesh {args.mesh} needs --mesh-units (m, cm or mm): a mesh file does not say "
                          "its units")
    for key, attr in (("mesh", "mesh"), ("units", "mesh_units"), ("electrodes", "electrodes"),
                      ("electrode_units", "electrode_units")):
        value = getattr(args, attr)
        if value is not None:
            data["body"][key] = value
            if key in ("mesh", "electrodes"):
                data["body"][f"{key}_sha256"] = ""   # a file named on the command line is pinned afresh
    return Recipe.from_dict(data)


def _check_recipe(recipe) -> None:
    """What generation would only find out at its first record, checked before it starts: an
    activity name that no record could draw. (An SNR target for a noise kind the recipe leaves
    off is a ``ConsistencyWarning`` of ``NoiseConfig`` itself, raised when the recipe is read.)

    Parameters
    ----------
    recipe : Recipe
        The parsed recipe.

    Raises
    ------
    ConfigError
        An activity of ``[simulation.activities]`` is not a known activity.
    """
    from .errors import ConfigError
    from .motion.config import ACTIVITIES

    unknown = sorted(set(recipe.simulation.activities) - set(ACTIVITIES))
    if unknown:
        raise ConfigError(f"simulation.activities: unknown activity {', '.join(map(repr, unknown))}; known: "
                          f"{', '.join(ACTIVITIES)}")


def _cmd_generate(args) -> int:
    from .dataset import generate

    recipe = _recipe_from_args(args)
    _check_recipe(recipe)
    # A progress bar only where someone watches it: not into logs, pipes or CI output.
    progress = not (args.no_progress or args.quiet) and sys.stderr.isatty()
    _log.info("generating %d records into %s (workers %d, scheduler %s)", recipe.records, args.output,
              args.workers, args.scheduler)
    run = generate
    if recipe.refine.model:  # a learned refiner needs torch; it is applied in each worker
        from .torch.refine import generate_refined as run
    from .warmup import first_compile_notice

    with first_compile_notice() if progress else contextlib.nullcontext():
        summary = run(recipe, args.output, workers=args.workers, scheduler=args.scheduler,
                      progress=progress, overwrite=args.overwrite)
    _say(args, summary)
    return 0


def _say(args, text) -> None:
    """Print a command's result on stdout unless --quiet."""
    if not args.quiet:
        print(text)


def _cmd_export(args) -> int:
    from .dataset.export import export_dataset

    _log.info("exporting %s to %s as %s", args.path, args.output, args.format)
    names = export_dataset(args.path, args.output, format=args.format, overwrite=args.overwrite)
    _say(args, f"wrote {len(names)} {args.format.upper()} records to {args.output}")
    return 0


def _cmd_info(args) -> int:
    from .dataset import summarize

    _log.debug("summarising %s", args.path)
    _say(args, summarize(args.path, verify=True if args.verify else None))
    return 0


def _cmd_recipe(args) -> int:
    from .dataset import Recipe, default_recipe_text
    from ._atomic import atomic_path
    from .errors import ConfigError

    if args.recipe_command == "init":
        if args.path.exists() and not args.overwrite:
            raise ConfigError(f"{str(args.path)!r} exists; pass --overwrite to replace it")
        with atomic_path(args.path) as tmp:
            tmp.write_text(default_recipe_text())
        _say(args, f"wrote default recipe to {args.path}")
        return 0
    if args.recipe_command == "check":
        from .device import load_device

        recipe = Recipe.read(args.path)
        load_device(recipe.device)  # an unknown device or a missing TOML fails here, not at generation
        _check_recipe(recipe)
        _say(args, f"{args.path}: valid recipe ({recipe.source.kind} source, device {recipe.device})")
        return 0
    raise ConfigError("recipe needs an action: init or check")


def _prior_records(seq, select, folds: set, max_records: int):
    """``(source_id, 12 standard leads (12, T) float64 mV, fs)`` of the records of ``seq`` that
    ``select`` takes, outside the PTB-XL ``folds`` left out, at most ``max_records`` of them;
    a taken record without the 12 standard leads is a LeadError naming it."""
    import numpy as np

    from .errors import LeadError
    from .leads import STANDARD_LEADS

    n = 0
    for k in range(len(seq)):
        if n >= max_records:
            return
        rec = seq[k]
        if int(rec.metadata.get("strat_fold", 0) or 0) in folds or not select(rec):
            continue
        missing = [ld for ld in STANDARD_LEADS if ld not in rec.leads]
        if missing:
            raise LeadError(f"record {rec.source_id!r} lacks the standard leads {missing}")
        idx = [rec.leads.index(ld) for ld in STANDARD_LEADS]
        yield rec.source_id, np.asarray(rec.signal, np.float64)[idx], float(rec.fs)
        n += 1


def _cmd_prior(args) -> int:
    import numpy as np

    from .errors import ConfigError
    from .ode.fit import fit_records_prior
    from .ode.prior import fit_adaptive_proposal, write_prior
    from .ode.realism import lead_matrix
    from .sources import open_source

    if args.prior_command == "rhythm":
        return _cmd_prior_rhythm(args)
    if args.prior_command != "fit":
        raise ConfigError("prior needs an action: fit or rhythm")
    cls = args.cls or "NORM"
    if cls != "NORM":
        return _cmd_prior_class(args, cls)
    folds = {int(f) for f in args.exclude_folds.split(",") if f.strip()}
    seq = open_source(args.source)
    rng = np.random.default_rng(args.seed)
    normal = _prior_records(seq, lambda rec: set(rec.labels) == {"NORM"}, folds, args.max_records)
    prior = fit_records_prior(normal, lead_matrix(), rng, log=print, basis=args.basis,
                              meta={"command": "cardiosim prior fit --source " + args.source
                                    + (f" --basis {args.basis}" if args.basis else ""),
                                    "excluded_folds": sorted(folds)})
    if args.proposal_draws:
        prior = fit_adaptive_proposal(prior, np.random.default_rng([args.seed, 1]), round_draws=args.proposal_draws)
    write_prior(prior, args.output)
    print(f"wrote {args.output}: {prior.n_beats} fits from {prior.n_records} records")
    return 0


def _cmd_prior_rhythm(args) -> int:
    """``cardiosim prior rhythm RECORD... -o FILE``: the rhythm prior of annotated records."""
    from .errors import ConfigError
    from .ode.rhythm_prior import read_rhythm_prior, rhythm_prior_from_records, write_rhythm_prior

    records = []
    for p in args.records:
        if p.is_dir():
            found = sorted(h.with_suffix("") for h in p.glob("*.hea") if h.with_suffix("." + args.annotator).is_file())
            if not found:
                raise ConfigError(f"{p}: no WFDB record with .{args.annotator} annotations in this folder")
            records += found
        else:
            rec = p.with_suffix("") if p.suffix == ".hea" else p
            if not rec.with_suffix(".hea").is_file():
                raise ConfigError(f"{p}: no WFDB header {rec.with_suffix('.hea')}")
            records.append(rec)
    prior = rhythm_prior_from_records(records, annotator=args.annotator)
    prior["command"] = "cardiosim prior rhythm " + " ".join(str(p) for p in args.records)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_rhythm_prior(prior, args.output)
    read_rhythm_prior(args.output)   # what a recipe will read
    af = prior["af"]
    print(f"wrote {args.output}: {af['n_windows']} AF windows from {len(records)} records (rate "
          f"{af['observed_hr_range'][0]:.0f}-{af['observed_hr_range'][1]:.0f} bpm, RR CV "
          f"{af['observed_cv_range'][0]:.2f}-{af['observed_cv_range'][1]:.2f}), "
          f"{prior['coupling']['PAC']['n']} PACs, {prior['coupling']['PVC']['n']} PVCs; use it with "
          f"[source] rhythm_prior = \"{args.output}\"")
    return 0


def _cmd_prior_class(args, cls) -> int:
    """``cardiosim prior fit --class C``: the class prior p(eta | C) from the source's records of C."""
    import numpy as np

    from .errors import ConfigError
    from .ode.classes import class_record_filter
    from .ode.fit import fit_records_prior
    from .ode.prior import class_screen_rates, fit_class_proposal, write_prior
    from .ode.realism import lead_matrix
    from .sources import open_source

    class_record_filter(cls, "scp")  # an unknown class: ConfigError naming the known ones
    kind = str(args.source).partition(":")[0]
    system = {"ptbxl": "scp", "wfdb": "snomed"}.get(kind)
    if system is None:
        raise ConfigError(f"--class selects records by their PTB-XL SCP or CinC 2021 SNOMED CT codes: use a "
                          f"'ptbxl:PATH' or 'wfdb:PATH' source, not {args.source!r}")
    wanted = class_record_filter(cls, system)
    folds = {int(f) for f in args.exclude_folds.split(",") if f.strip()}
    seq = open_source(args.source)
    seen = {"records": 0, "excluded": {}}

    def of_class(rec) -> bool:
        seen["records"] += 1
        ok, why = wanted(rec.codes)
        if not ok and why:
            seen["excluded"][rec.source_id] = why
        return ok

    recs = list(_prior_records(seq, of_class, folds, args.max_records))
    if not recs:
        raise ConfigError(f"no {cls} record in {args.source!r} ({seen['records']} records read outside the left-out "
                          f"folds {sorted(folds)}, {len(seen['excluded'])} of class {cls} excluded for another "
                          f"class: {dict(list(seen['excluded'].items())[:5])}); a class prior needs records "
                          f"whose codes contain {cls}'s")
    rng = np.random.default_rng(args.seed)
    prior = fit_records_prior(recs, lead_matrix(), rng, log=print, morphology=cls, min_records=1, basis=args.basis,
                              meta={"command": f"cardiosim prior fit --class {cls} --source {args.source}"
                                    + (f" --basis {args.basis}" if args.basis else ""),
                                    "class": cls, "selected_by": f"{system} codes of {cls}",
                                    "excluded_records": seen["excluded"], "excluded_folds": sorted(folds)})
    prior.meta["class_screen"] = class_screen_rates(prior, np.random.default_rng([args.seed, 1]))
    if args.proposal_draws:
        prior = fit_class_proposal(prior, np.random.default_rng([args.seed, 2]),
                                   round_draws=max(args.proposal_draws // 6, 1000))
    write_prior(prior, args.output)
    print(f"wrote {args.output}: {cls} prior, {prior.n_beats} fits from {prior.n_records} records")
    return 0


def _cmd_plot(args) -> int:
    from .dataset import open_dataset
    from .errors import ConfigError
    from .plot import plot_record, save_png

    ds = open_dataset(args.path)
    try:
        n = ds.sizes["record"]
        if not 0 <= args.record < n:
            raise ConfigError(f"--record {args.record} is out of range; the dataset has {n} records")
        fig = plot_record(ds, args.record)
    finally:
        ds.close()
    out = args.output or args.path.with_name(f"{args.path.stem}-record{args.record}.png")
    save_png(fig, out)
    _say(args, f"wrote {out}")
    return 0


def _measure_signals(args):
    """``(signals [c, T] float64, fs, names, rails)`` of the record ``cardiosim measure`` reads."""
    import numpy as np

    from .errors import ConfigError

    path = args.path
    if path.suffix == ".nc" or (path.is_dir() and any(path.glob("*.nc"))):
        from .dataset import open_dataset

        if args.record is None:
            raise ConfigError(f"{path} is a dataset: say which record with --record N")
        ds = open_dataset(path)
        try:
            n = ds.sizes["record"]
            if not 0 <= args.record < n:
                raise ConfigError(f"--record {args.record} is out of range; the dataset has {n} records")
            rec = ds.isel(record=args.record)
            x = np.asarray(rec["ecg"].values, dtype=np.float64)
            names = [str(v) for v in ds["lead"].values]
            fs = float(ds.attrs["sampling_rate"])
            device = str(ds.attrs.get("device", ""))
        finally:
            ds.close()
        # the device's ADC rails, where the dataset names a shipped profile (else rails are not read)
        from .device import device_names, load_device

        if device in device_names():
            d = load_device(device)
            return x, fs, names, (-d.input_range_mv, d.input_range_mv - d.lsb_mv)
        return x, fs, names, None
    if args.record is not None:
        raise ConfigError(f"--record is for datasets; {path} is read as a WFDB record")
    from .sources.wfdb_reader import read_wfdb_signal

    # only ratios are measured: channels in ADC units are read as they are
    x, fs, names, _ = read_wfdb_signal(path, lead_names=False, require_volts=False)
    return x, fs, [str(n) for n in names], None


def _cmd_measure(args) -> int:
    import json

    from ._atomic import atomic_path
    from .errors import LeadError, SignalError
    from .noise.textile import summarize_recording

    x, fs, names, rails = _measure_signals(args)
    if args.channel:
        unknown = [c for c in args.channel if c not in names]
        if unknown:
            raise LeadError(f"unknown channel(s) {', '.join(unknown)}; the record has {', '.join(names)}")
        keep = [names.index(c) for c in args.channel]
    else:
        keep = list(range(len(names)))
    out, failed = {}, 0
    _say(args, f"{args.path}: {len(keep)} lead(s) at {fs:g} Hz, {x.shape[1] / fs:.1f} s; 2-s segments")
    _say(args, "| lead | beats | noise/QRS median (IQR) | grades 1-4 % | record grade | kurtosis | rail / contact % |")
    _say(args, "| --- | --- | --- | --- | --- | --- | --- |")
    for k in keep:
        try:
            r = summarize_recording(x[k], fs, rails=rails)
        except SignalError as exc:
            failed += 1
            out[names[k]] = {"error": str(exc)}
            _say(args, f"| {names[k]} | not measurable: {exc} | | | | | |")
            continue
        out[names[k]] = r
        gf = "/".join(f"{100 * v:.0f}" for v in r["grade_fractions"])
        _say(args, f"| {names[k]} | {r['n_beats']} | {r['noise_to_qrs_median']:.3f} ({r['noise_to_qrs_q25']:.3f}-"
                   f"{r['noise_to_qrs_q75']:.3f}) | {gf} | {r['record_grade']} | {r['residual_kurtosis']:.1f} | "
                   f"{100 * r['rail_fraction']:.1f} / {100 * r['contact_fraction']:.1f} |")
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps({"path": str(args.path), "fs": fs, "leads": out}, indent=1) + "\n")
        _say(args, f"wrote {args.json}")
    if failed == len(keep):
        raise SignalError(f"no lead of {args.path} could be measured")
    return 0


def _device_lead_index(device: str, lead: str) -> int:
    """The index of ``--lead`` (an index, or a lead name such as ``II``) among the leads of the
    device profile ``device``.

    Parameters
    ----------
    device : str
        Shipped device profile name or TOML path.
    lead : str
        Lead index (digits) or lead name of the device's montage.

    Returns
    -------
    int
        Index of the lead in the device's recording.

    Raises
    ------
    LeadError
        The name is not one of the device's leads, or the index is out of range.
    """
    from .device import load_device
    from .errors import LeadError

    names = tuple(load_device(device).make_montage().leads)
    if lead.isdigit():
        index = int(lead)
        if index >= len(names):
            raise LeadError(f"--lead {index} is out of range; device {device!r} records {len(names)} lead(s): "
                            f"{', '.join(names)}")
        return index
    if lead not in names:
        raise LeadError(f"--lead {lead!r} is not a lead of device {device!r}; its leads: {', '.join(names)} "
                        "(or give an index)")
    return names.index(lead)


def _cmd_noise(args) -> int:
    import math

    from .errors import ConfigError
    from .device_fit import fit_device_noise

    if args.noise_command != "fit":
        raise ConfigError("noise needs an action: fit")
    channel = int(args.channel) if args.channel.isdigit() else args.channel
    lead = _device_lead_index(args.device, args.lead)
    fit = fit_device_noise(args.recordings, args.electrode, args.activity, args.output, channel=channel,
                           device=args.device, lead=lead, base=args.base, n_records=args.calibration_records,
                           seed=args.seed, progress=lambda msg: _say(args, f"  {msg}"))
    row = fit["table"][f"{args.electrode}/{args.activity}"]
    _say(args, f"{args.electrode}/{args.activity}: {len(args.recordings)} recording(s), {row['n_segments']} 2-s segments; "
               f"noise-to-QRS median {row['noise_to_qrs_median']:.4f} (IQR {row['noise_to_qrs_q25']:.4f}-"
               f"{row['noise_to_qrs_q75']:.4f}), residual kurtosis {row['residual_kurtosis']:.2f}; "
               f"calibrated level x{math.exp(row['log_level_calibration']):.3f}"
               + (" (floor-limited: the simulated beats alone read more than the target)"
                  if row["calibration_floor_limited"] else ""))
    _say(args, f"wrote {args.output}; use it with [simulation.noise] textile_fit = \"{args.output}\"")
    return 0


def _cmd_warmup(args) -> int:
    import time

    from .warmup import PARTS, compile_kernels

    t0 = time.perf_counter()
    took = compile_kernels(jobs=args.jobs)
    if not args.quiet:
        for name, seconds in took.items():
            print(f"  {name:9s} {seconds:6.1f} s  {PARTS[name][1]}")
        print(f"numba kernels compiled or loaded in {time.perf_counter() - t0:.1f} s ({args.jobs} processes)")
    return 0


def _cmd_bench(args) -> int:
    import tempfile
    import time

    from .dataset import Recipe, generate
    from .dataset.generate import _state, simulate_block

    recipe = Recipe.from_dict({"records": args.records, "duration": args.duration, "seed": 0})
    text = recipe.to_toml()
    t0 = time.perf_counter()
    _state(text)
    simulate_block(text, 0, 1)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    simulate_block(text, 0, args.records)
    sim = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate(recipe, f"{tmp}/bench", progress=False)
        full = time.perf_counter() - t0
    n = args.records
    print(f"records: {n} x {args.duration:g} s, 12 leads, {recipe.device}")
    print(f"  set-up (lead field, JIT)      {setup:8.2f} s")
    print(f"  simulate only                 {n / sim:8.1f} records/s")
    print(f"  simulate + write netCDF shards {n / full:7.1f} records/s  ({full / sim:.2f}x the time)")
    return 0


def _cmd_refine(args) -> int:
    from .errors import ConfigError, DataFormatError

    if args.refine_command is None:
        raise ConfigError("refine needs an action: train or apply")
    if args.refine_command == "train":
        if args.output.exists() and not args.overwrite:
            raise ConfigError(f"refiner file {str(args.output)!r} exists; pass --overwrite to replace it")
        for what, path in (("dataset", args.dataset), ("recordings", args.recordings)):
            if not path.exists():
                raise DataFormatError(f"--{what} {str(path)!r} does not exist")
        from .torch.refine import train_refiner_from_files

        kw = dict(steps=args.steps, batch=args.batch, seed=args.seed, lambda_beat=args.lambda_beat,
                  progress=sys.stderr.isatty() and not args.quiet)
        if args.no_physics:
            kw["lambda_physics"] = 0.0
        if args.free_average_beat:
            kw["keep_average_beat"] = False
        if args.mode is not None:
            kw["mode"] = args.mode
        for flag in ("max_slope_fraction", "max_amplitude_fraction"):
            value = getattr(args, flag)
            if value is not None:
                if not 0 <= value < float("inf"):   # NaN fails too
                    raise ConfigError(f"--{flag.replace('_', '-')} must be >= 0, got {value}")
                kw[flag] = value
        res = train_refiner_from_files(args.dataset, args.recordings, args.output, **kw)
        if not args.no_physics and not res.settings.get("lambda_physics"):
            import warnings

            from .errors import ConsistencyWarning

            warnings.warn(f"dataset {str(args.dataset)!r} stores no clean_ecg (or beat_r_peak), so the refiner was "
                          "trained without the physics term; generate the dataset with [output] store_clean = true "
                          "to keep it (or pass --no-physics to say so)", ConsistencyWarning, stacklevel=1)
        h = res.history
        _say(args, f"wrote {args.output}: {res.settings['n_simulated']} simulated records, {res.settings['n_real']} "
                   f"real windows, {args.steps} steps; last step adversarial {h['adversarial'][-1]:.3f}, "
                   f"regularisation {h['regularisation'][-1]:.4f}, physics {h['physics'][-1]:.3f}, "
                   f"beat {h['beat'][-1]:.4f}")
        return 0
    from .torch.refine import refine_dataset

    if not args.dataset.exists():
        raise DataFormatError(f"--dataset {str(args.dataset)!r} does not exist")
    out = refine_dataset(args.dataset, args.refiner, args.output, keep_simulated=not args.no_simulated,
                         overwrite=args.overwrite)
    _say(args, f"wrote {out}")
    return 0


def _cmd_sim2real(args) -> int:
    from . import sim2real

    conditions = None if not args.conditions else [c.strip() for c in args.conditions.split(",") if c.strip()]
    kw = dict(budget=args.budget, conditions=conditions, data_dir=args.data)
    if args.all:
        sim2real.run_all(args.output, **kw)
        print(f"wrote {args.output / 'summary.md'} and {args.output / 'sim2real.png'}")
    else:
        result = sim2real.run(args.task, args.output, **kw)
        print((args.output / args.task / "table.md").read_text())
        print("\n".join(result["findings"]))
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    args.quiet = getattr(args, "quiet", False)
    _configure_logging(args)
    handler = {"generate": _cmd_generate, "info": _cmd_info, "recipe": _cmd_recipe, "plot": _cmd_plot,
               "export": _cmd_export,
               "bench": _cmd_bench, "warmup": _cmd_warmup, "sim2real": _cmd_sim2real, "prior": _cmd_prior,
               "refine": _cmd_refine, "measure": _cmd_measure, "noise": _cmd_noise}[args.command]
    import warnings

    shown = _CliWarnings(args.command)
    previous = warnings.showwarning
    warnings.showwarning = shown.show
    try:
        return handler(args)
    except CardiosimError as exc:
        print(f"cardiosim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cardiosim {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous
        shown.summary()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
