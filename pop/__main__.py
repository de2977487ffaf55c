"""``pop``: Partial Order Pruning — latency look-up table, search space, Algorithm 1, workers,
reports.  ``python -m pop --help``."""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from tools.common.atomic import atomic_write_text
from tools.common.cli import one_line
from tools.common.textfile import TextFileError, read_text

DESCRIPTION = """\
Partial Order Pruning (POP, Li et al., CVPR 2019): search the architectures whose latency
lies in [Tmin, Tmax] for the best speed/accuracy trade-off.  Latency is estimated from a
look-up table of block latencies (Lat(x) = stem + sum of blocks + head); the partial order
"shallower or narrower is less accurate" prunes every model that is slower than a known
model at least as accurate, so far fewer models need training.

  pop space          enumerate the search space S^ and report its size
  pop lut build      profile every block configuration on this machine (incremental)
  pop lut validate   compare estimated and measured whole-network latencies (Fig. 3a)
  pop lut decoder    profile the decoder settings [C3,C4,C5] of a fixed backbone
  pop search         run Algorithm 1 (creates the study, trains with one worker)
  pop worker         join a study as one more worker (e.g. on PostgreSQL)
  pop optuna         Optuna's NSGA-II (or TPE, random) on S^, skipping the models the partial
                     order settles; same space, storage and evaluators as pop search
  pop report         boundary table and Fig. 5, 7, 8a, 8b plots, one HTML page
"""


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and `pop X --help` still shows the usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _space_args(p: argparse.ArgumentParser, lut_required: bool = True) -> None:
    g = p.add_argument_group("search space S^")
    g.add_argument("--space", type=pathlib.Path, help="YAML file: stages (block, widths, min/max_depth), "
                   "input_size, num_classes, latency_ms [Tmin, Tmax]")
    g.add_argument("--block", choices=["basic", "bottleneck"], help="block type of every stage (without --space)")
    g.add_argument("--widths", help="width choices, comma separated (default: the paper's 64,128,256,512,1024)")
    g.add_argument("--max-depth", help="maximum blocks per stage, e.g. 4,6,4")
    g.add_argument("--input-size", help="input resolution HxW, e.g. 224x224")
    g.add_argument("--num-classes", type=int, help="classifier outputs (default 1000)")
    g.add_argument("--latency", help="latency window Tmin,Tmax in ms (overrides the file)")
    if lut_required:
        p.add_argument("--lut", type=pathlib.Path, required=True, help="latency look-up table (JSON)")
        p.add_argument("--allow-foreign-lut", action="store_true",
                       help="use a LUT measured on another platform (e.g. the deployment device)")


def _space_config(args):
    from .space import SpaceConfig
    if args.space is not None:
        cfg = SpaceConfig.load(args.space)
        data = cfg.to_dict()
    else:
        if not args.max_depth:
            raise UsageError("give --space FILE or at least --max-depth (e.g. --max-depth 4,6,4)")
        data = {"stages": [{} for _ in range(3)]}
    if args.max_depth:
        depths = _ints(args.max_depth, "--max-depth")
        if len(depths) != 3:
            raise UsageError("--max-depth needs 3 values (paper stages 3, 4, 5)")
        for st, d in zip(data["stages"], depths):
            st["max_depth"] = d
    if args.block:
        for st in data["stages"]:
            st["block"] = args.block
    if args.widths:
        ws = _ints(args.widths, "--widths")
        for st in data["stages"]:
            st["widths"] = ws if st.get("block", "basic") == "basic" else [[w, 4 * w] for w in ws if 4 * w <= 1024]
    if args.input_size:
        try:
            h, w = (int(v) for v in args.input_size.lower().split("x"))
        except ValueError:
            raise UsageError(f"--input-size {args.input_size!r}: expected HxW, e.g. 224x224")
        data["input_size"] = [h, w]
    if args.num_classes:
        data["num_classes"] = args.num_classes
    if args.latency:
        lo_hi = _floats(args.latency, "--latency")
        if len(lo_hi) != 2:
            raise UsageError("--latency needs Tmin,Tmax")
        data["latency_ms"] = lo_hi
    return SpaceConfig.from_dict(data, where=str(args.space) if args.space else "command line")


def _ints(text, flag):
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected comma-separated integers")


def _floats(text, flag):
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected comma-separated numbers")


def _load_lut(args, check_platform: bool = True):
    from .lut import LatencyTable
    table = LatencyTable.load(args.lut)
    if check_platform and not getattr(args, "allow_foreign_lut", False):
        from .backends import current_platform_of
        table.check_platform(current_platform_of(table.platform), str(args.lut))
    return table


def _enumerate(args):
    from .space import Space
    cfg = _space_config(args)
    table = _load_lut(args)
    space = Space.enumerate(cfg, table)
    if space.size == 0:
        lo, hi = cfg.latency_ms
        raise UsageError(f"S^ is empty: no architecture of the space has an estimated latency in [{lo}, {hi}] ms")
    return cfg, table, space


# ----------------------------------------------------------------------------- commands
def cmd_space(args) -> int:
    cfg, _, space = _enumerate(args)
    lo, hi = cfg.latency_ms
    print(f"|S^| = {space.size} architectures with estimated latency in [{lo}, {hi}] ms "
          f"(enumerated in {space.seconds:.2f} s)")
    print(f"latency: min {space.latency.min():.3f} ms, median {float(__import__('numpy').median(space.latency)):.3f} ms, "
          f"max {space.latency.max():.3f} ms")
    for i in sorted({0, space.size // 2, space.size - 1}):
        print(f"  {space.latency[i]:8.3f} ms  {space.encoding(i)}")
    if args.json:
        atomic_write_text(args.json, json.dumps({"space_size": space.size, "seconds": space.seconds,
                                         "latency_ms": [float(space.latency.min()), float(space.latency.max())]}) + "\n")
    return 0


def cmd_lut_build(args) -> int:
    from .backends import make_backend
    from .lut import LatencyTable, build, required_keys
    cfg = _space_config(args)
    backend = make_backend(args.backend, threads=args.threads, iterations=args.iterations)
    here = backend.platform()
    if args.lut.exists():
        table = LatencyTable.load(args.lut)
        table.check_platform(here, str(args.lut))
    else:
        table = LatencyTable(here)
    keys = required_keys(cfg)
    missing = table.missing(keys)
    print(f"{len(keys)} block configurations for this space, {len(missing)} to profile on {args.backend}")
    added = build(table, keys, backend, save_to=args.lut)
    if args.calibrate and "calibration" not in table.meta:
        from .space import Space
        from .validate import calibrate
        space = Space.enumerate(cfg, table)
        if space.size:
            cal = calibrate(space, table, backend, n=args.calibrate)
            table.save(args.lut)
            print(f"calibrated on {cal['nets']} whole networks: whole / Σ parts = {cal['scale']:.3f}")
    print(f"wrote {args.lut}: {len(table.entries)} entries ({added} new)")
    return 0


def cmd_lut_validate(args) -> int:
    from .backends import make_backend
    from .validate import validate
    cfg, table, space = _enumerate(args)
    backend = make_backend(args.backend, threads=args.threads, iterations=args.iterations)
    table.check_platform(backend.platform(), str(args.lut))
    summary = validate(space, table, backend, n=args.n, seed=args.seed, out_dir=args.out)
    print(f"{summary['n']} architectures: median |error| {summary['median_abs_error_pct']:.2f} %, "
          f"{summary['within_10pct'] * 100:.1f} % within ±10 %  ->  {summary['plot']}")
    return 0


def cmd_lut_decoder(args) -> int:
    from .backends import make_backend
    from .decoder import measure
    try:
        h, w = (int(v) for v in args.input_size.lower().split("x"))
    except ValueError:
        raise UsageError(f"--input-size {args.input_size!r}: expected HxW, e.g. 512x1024")
    choices = [c.strip() if c.strip() == "K" else int(c) for c in args.wc_choices.split(",")]
    backend = make_backend(args.backend, threads=args.threads, iterations=args.iterations)
    doc = measure(args.backbone, args.num_classes, choices, (h, w), backend, args.out, d8=args.d8)
    lat = doc["decoder"]["latency_ms"]
    print(f"wrote {args.out}: {len(lat)} decoder settings, {min(lat.values()):.3f}-{max(lat.values()):.3f} ms "
          f"(search it with: pop search --decoder {args.out})")
    return 0


def _spec_from_args(args, space_dict, table):
    from .study import SearchSpec
    return SearchSpec(space=space_dict, lut=table.to_json(), seed=args.seed, patience=args.patience,
                      budget=args.budget, evaluator=args.evaluator, lease_timeout=args.lease_timeout,
                      rule=args.rule, margin_quantile=args.margin_quantile)


def cmd_search(args) -> int:
    from .evaluators import make_evaluator
    from .study import create_study, run_worker
    if args.decoder:
        from .decoder import DecoderSpace
        from .lut import LatencyTable
        import yaml
        try:
            data = yaml.safe_load(read_text(args.decoder, "YAML decoder space"))
        except TextFileError as e:
            raise UsageError(str(e)) from None
        except yaml.YAMLError as e:
            raise UsageError(f"{args.decoder}: not YAML ({str(e).splitlines()[0]})") from None
        space = DecoderSpace.from_dict(data)
        if space.size == 0:
            raise UsageError(f"{args.decoder}: S^ is empty (no decoder setting inside the window)")
        spec = _spec_from_args(args, data, LatencyTable({}))
    else:
        if args.lut is None:
            raise UsageError("pop search needs --lut (or --decoder FILE)")
        cfg, table, space = _enumerate(args)
        spec = _spec_from_args(args, cfg.to_dict(), table)
    evaluator = make_evaluator(args.evaluator)
    create_study(args.storage, args.study, spec)
    print(f"study {args.study!r} on {args.storage}: |S^| = {space.size}, seed {args.seed}, K = {args.patience}")
    if args.create_only:
        print(f"created; start workers with: pop worker --storage {args.storage} --study {args.study}")
        return 0
    replay = run_worker(args.storage, args.study, evaluator, workdir=args.workdir, poll=args.poll,
                        progress=not args.quiet)
    _print_summary(replay)
    return 0


def cmd_worker(args) -> int:
    from .evaluators import make_evaluator
    from .study import run_worker
    evaluator = make_evaluator(args.evaluator) if args.evaluator else None
    replay = run_worker(args.storage, args.study, evaluator, workdir=args.workdir, poll=args.poll,
                        heartbeat=args.heartbeat, trace=args.trace, progress=not args.quiet)
    _print_summary(replay)
    return 0


def _print_summary(replay) -> None:
    st = replay.state
    print(f"trained {len(st.D)}, pruned {st.pruned_not_trained} (pruned/trained = "
          f"{st.pruned_not_trained / max(len(st.D), 1):.2f}), boundary {len(st.boundary)} models, "
          f"unchanged for {st.unchanged} iterations")
    for i in sorted(st.boundary, key=lambda i: replay.space.latency[i]):
        print(f"  {replay.space.latency[i]:8.3f} ms  {st.acc[i] * 100:6.2f} %  {replay.space.encoding(i)}")


def cmd_optuna(args) -> int:
    from .evaluators import make_evaluator
    from .sampler import optuna_study, run_optuna
    cfg, table, space = _enumerate(args)
    spec = {"space": cfg.to_dict(), "lut": table.to_json(), "seed": args.seed, "sampler": args.sampler,
            "population": args.population, "rule": args.order, "margin_quantile": args.margin_quantile,
            "evaluator": args.evaluator}
    study, order = optuna_study(args.storage, args.study, spec, space)
    print(f"study {args.study!r} on {args.storage}: |S^| = {space.size}, {args.sampler}, order: {args.order}")
    n = run_optuna(study, order, space, make_evaluator(args.evaluator), args.budget, args.workdir)
    print(f"trained {n}" + (f", {order.skipped} settled proposals skipped" if order else "") + "; boundary:")
    for t in sorted((t for t in study.best_trials if t.user_attrs.get("trained")), key=lambda t: t.values[0]):
        print(f"  {t.values[0]:8.3f} ms  {t.values[1] * 100:6.2f} %  {t.user_attrs['encoding']}")
    return 0


def cmd_report(args) -> int:
    from .report import write_report
    out = write_report(args.storage, args.study, args.out)
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pop", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("space", help="enumerate S^: architectures with estimated latency in [Tmin, Tmax]")
    _space_args(s)
    s.add_argument("--json", type=pathlib.Path, help="also write size and time as JSON")
    s.set_defaults(func=cmd_space)

    lut = sub.add_parser("lut", help="latency look-up table: build, validate, decoder")
    lsub = lut.add_subparsers(dest="lut_command", required=True, parser_class=_Parser)
    for name, func, helptext in (("build", cmd_lut_build, "profile each distinct block configuration (only missing keys)"),
                                 ("validate", cmd_lut_validate, "profile N whole networks and compare with the LUT estimate")):
        q = lsub.add_parser(name, help=helptext)
        _space_args(q, lut_required=False)
        q.add_argument("--lut", type=pathlib.Path, required=True, help="LUT file (JSON); created or extended")
        q.add_argument("--backend", default="caffe", help="caffe | caffe-time | opencv | onnxruntime | tensorrt")
        q.add_argument("--threads", type=int, default=1, help="CPU threads of the engine")
        q.add_argument("--iterations", type=int, default=20, help="timed forward passes per measurement")
        if name == "build":
            q.add_argument("--calibrate", type=int, default=10, metavar="N",
                           help="time N whole nets with their parts to calibrate whole / Σ parts (0: skip)")
        if name == "validate":
            q.add_argument("-n", type=int, default=20, help="number of random architectures")
            q.add_argument("--seed", type=int, default=0)
            q.add_argument("--out", type=pathlib.Path, default=pathlib.Path("pop_lut_validate"))
        q.set_defaults(func=func)

    q = lsub.add_parser("decoder", help="profile each decoder setting [C3,C4,C5] of a fixed backbone "
                        "(whole DF-Seg nets) and write the decoder space for `pop search --decoder`")
    q.add_argument("--backbone", required=True, help="backbone encoding, e.g. \"[(64,64,64),(128,128,128),(256,256,256,512)]\"")
    q.add_argument("--num-classes", type=int, default=19)
    q.add_argument("--wc-choices", default="K,32,64,128,256,512", help="width-controller choices (K = classes)")
    q.add_argument("--input-size", default="1024x2048", help="HxW of the profiled nets")
    q.add_argument("--d8", action="store_true", help="the -d8 head (no final x8 up-sampling)")
    q.add_argument("--out", type=pathlib.Path, required=True, help="decoder space YAML (created or extended)")
    q.add_argument("--backend", default="caffe", help="caffe | caffe-time | opencv | onnxruntime | tensorrt")
    q.add_argument("--threads", type=int, default=1)
    q.add_argument("--iterations", type=int, default=10)
    q.set_defaults(func=cmd_lut_decoder)

    def common_search(q):
        q.add_argument("--storage", default="sqlite:///pop.db",
                       help="Optuna storage URL: sqlite:///FILE (one process) or postgresql://USER@HOST/DB (many workers)")
        q.add_argument("--study", default="pop", help="study name")
        q.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("pop_runs"), help="where trainings write")
        q.add_argument("--poll", type=float, default=1.0, help="seconds between looks when all candidates are claimed")
        q.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("search", help="Algorithm 1: sample from S^ minus the pruned set P, train, prune, "
                       "until the boundary B(D) is unchanged for K iterations")
    _space_args(s, lut_required=False)
    s.add_argument("--lut", type=pathlib.Path, help="latency look-up table (JSON)")
    s.add_argument("--allow-foreign-lut", action="store_true", help="use a LUT measured on another platform")
    s.add_argument("--decoder", type=pathlib.Path, help="decoder search: YAML with the backbone and per-setting "
                   "latencies of the width controllers [C3,C4,C5]")
    s.add_argument("--seed", type=int, default=0, help="seed of the sampling order")
    s.add_argument("--patience", "-K", type=int, default=20, help="K: stop when B(D) is unchanged for K iterations")
    s.add_argument("--budget", type=int, help="stop after this many trained models")
    s.add_argument("--evaluator", default="surrogate",
                   help="surrogate[:seed=N,noise=F,max_violation=F] | csv:FILE | module:Class (e.g. solvers.pop_evaluator:CaffeEvaluator)")
    s.add_argument("--rule", choices=["pop", "noise-aware"], default="pop", help="pruning rule: the paper's, "
                   "or noise-aware (prune only past a margin estimated from trained pairs that violate the order)")
    s.add_argument("--margin-quantile", type=float, default=0.9, help="noise-aware rule: quantile of "
                   "Acc(m) - Acc(w) over trained pairs m < w used as the margin")
    s.add_argument("--create-only", action="store_true", help="create the study and exit (then start `pop worker`s)")
    s.add_argument("--lease-timeout", type=float, default=600.0, help="seconds without heartbeat before a "
                   "worker's candidate is offered again")
    common_search(s)
    s.set_defaults(func=cmd_search)

    w = sub.add_parser("worker", help="join a study: train candidates until Algorithm 1 stops")
    w.add_argument("--evaluator", help="override the study's evaluator")
    w.add_argument("--heartbeat", type=float, help="seconds between liveness heartbeats (default timeout/5)")
    w.add_argument("--trace", type=pathlib.Path, help="append start/done events as JSON lines")
    common_search(w)
    w.set_defaults(func=cmd_worker)

    o = sub.add_parser("optuna", help="Optuna's NSGA-II (or TPE, random) on S^; the partial order skips "
                       "the models it settles (trained, pruned, or being trained)")
    _space_args(o)
    o.add_argument("--sampler", choices=["nsga2", "tpe", "random"], default="nsga2")
    o.add_argument("--population", type=int, default=50, help="NSGA-II population size")
    o.add_argument("--order", choices=["noise-aware", "pop", "none"], default="noise-aware",
                   help="which pruning rule settles models (none: the plain sampler)")
    o.add_argument("--margin-quantile", type=float, default=0.9)
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--budget", type=int, required=True, help="stop when the study holds this many trained models")
    o.add_argument("--evaluator", default="surrogate", help="as for pop search")
    common_search(o)
    o.set_defaults(func=cmd_optuna)

    r = sub.add_parser("report", help="boundary table and plots (Fig. 5, 7, 8a, 8b) as PNG and one HTML page")
    r.add_argument("--storage", default="sqlite:///pop.db")
    r.add_argument("--study", default="pop")
    r.add_argument("--out", type=pathlib.Path, default=pathlib.Path("pop_report"))
    r.set_defaults(func=cmd_report)
    return p


def main(argv=None) -> int:
    from .evaluators import EvaluationError
    from .lut import LutError
    from .space import SpaceError
    from .storage_url import StorageUrlError
    from .study import StudyError
    from prototxt_gen.encoding import EncodingError

    parser = build_parser()
    args = parser.parse_args(argv)
    known = (UsageError, SpaceError, LutError, StudyError, StorageUrlError, EvaluationError, EncodingError)
    try:
        from .backends import BackendError
        known = known + (BackendError,)
    except ImportError:
        pass
    try:
        return args.func(args)
    except known as e:
        print(f"pop {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # an output path that is a file or a folder, a missing folder, a full disk
        print(f"pop {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed: not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"pop {args.command}: interrupted (completed trials are kept in the study)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
