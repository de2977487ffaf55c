"""The ``pop`` subcommands: one function per command, given the parsed arguments."""
from __future__ import annotations

import json

import numpy as np

from dfseg.base.atomic import atomic_write_text
from dfseg.base.errors import InputError
from dfseg.base.secrets import mask_url
from dfseg.base.textfile import TextFileError, read_yaml

from .backends import current_platform_of, make_backend
from .decoder import DecoderSpace, measure
from .evaluators import make_evaluator
from .lut import LatencyTable, build, required_keys
from .report import write_report
from .sampler import optuna_study, run_optuna
from .space import Space, SpaceConfig
from .study import SearchSpec, create_study, run_worker
from .validate import calibrate, validate


class UsageError(InputError):
    """A flag or a combination of flags that cannot work; the message says which."""


def _space_config(args):
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
    table = LatencyTable.load(args.lut)
    if check_platform and not getattr(args, "allow_foreign_lut", False):
        table.check_platform(current_platform_of(table.platform), str(args.lut))
    return table


def _enumerate(args):
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
    print(f"latency: min {space.latency.min():.3f} ms, median {float(np.median(space.latency)):.3f} ms, "
          f"max {space.latency.max():.3f} ms")
    for i in sorted({0, space.size // 2, space.size - 1}):
        print(f"  {space.latency[i]:8.3f} ms  {space.encoding(i)}")
    if args.json:
        atomic_write_text(args.json, json.dumps({"space_size": space.size, "seconds": space.seconds,
                                         "latency_ms": [float(space.latency.min()), float(space.latency.max())]}) + "\n")
    return 0


def cmd_lut_build(args) -> int:
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
        space = Space.enumerate(cfg, table)
        if space.size:
            cal = calibrate(space, table, backend, n=args.calibrate)
            table.save(args.lut)
            print(f"calibrated on {cal['nets']} whole networks: whole = {cal['scale']:.3f} x (Σ parts - "
                  f"(parts - 1) x {cal['part_overhead_ms']:.4f} ms)")
    print(f"wrote {args.lut}: {len(table.entries)} entries ({added} new)")
    return 0


def cmd_lut_validate(args) -> int:
    cfg, table, space = _enumerate(args)
    backend = make_backend(args.backend, threads=args.threads, iterations=args.iterations)
    table.check_platform(backend.platform(), str(args.lut))
    if args.repeats < 1:
        raise UsageError(f"--repeats {args.repeats}: must be at least 1")
    summary = validate(space, table, backend, n=args.n, seed=args.seed, out_dir=args.out,
                       repeats=args.repeats, busy=not args.no_busy)
    runs = [(f"run {i + 1}", r) for i, r in enumerate(summary["repeats"])]
    runs += [("busy neighbour", summary["busy"])] if summary["busy"] else []
    for name, r in runs:
        print(f"{name}: {r['n']} architectures, median |error| {r['median_abs_error_pct']:.2f} %, "
              f"{r['within_10pct'] * 100:.1f} % within ±10 %")
    worst = summary["worst"]
    print(f"worst run: {worst['within_10pct'] * 100:.1f} % within ±10 %, median |error| "
          f"{worst['median_abs_error_pct']:.2f} %  ->  {summary['plot']}")
    return 0


def cmd_lut_decoder(args) -> int:
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
    if not 0.0 < args.local_share <= 1.0:
        raise UsageError(f"--local-share {args.local_share}: must be in (0, 1]")
    return SearchSpec(space=space_dict, lut=table.to_json(), seed=args.seed, patience=args.patience,
                      budget=args.budget, evaluator=args.evaluator, lease_timeout=args.lease_timeout,
                      rule=args.rule, margin_quantile=args.margin_quantile, sampling=args.sampling,
                      local_share=args.local_share)


def cmd_search(args) -> int:
    if args.decoder:
        try:
            data = read_yaml(args.decoder, "YAML decoder space")
        except TextFileError as e:
            raise UsageError(str(e)) from None
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
    print(f"study {args.study!r} on {mask_url(args.storage)}: |S^| = {space.size}, seed {args.seed}, K = {args.patience}")
    if args.create_only:
        print(f"created; start workers with: pop worker --storage {mask_url(args.storage)} --study {args.study}")
        return 0
    replay = run_worker(args.storage, args.study, evaluator, workdir=args.workdir, poll=args.poll,
                        progress=not args.quiet, reconnect=args.reconnect_window)
    _print_summary(replay)
    return 0


def cmd_worker(args) -> int:
    evaluator = make_evaluator(args.evaluator) if args.evaluator else None
    replay = run_worker(args.storage, args.study, evaluator, workdir=args.workdir, poll=args.poll,
                        heartbeat=args.heartbeat, trace=args.trace, progress=not args.quiet,
                        reconnect=args.reconnect_window)
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
    cfg, table, space = _enumerate(args)
    spec = {"space": cfg.to_dict(), "lut": table.to_json(), "seed": args.seed, "sampler": args.sampler,
            "population": args.population, "rule": args.order, "margin_quantile": args.margin_quantile,
            "evaluator": args.evaluator}
    study, order = optuna_study(args.storage, args.study, spec, space)
    print(f"study {args.study!r} on {mask_url(args.storage)}: |S^| = {space.size}, {args.sampler}, order: {args.order}")
    n = run_optuna(study, order, space, make_evaluator(args.evaluator), args.budget, args.workdir)
    print(f"trained {n}" + (f", {order.skipped} settled proposals skipped" if order else "") + "; boundary:")
    for t in sorted((t for t in study.best_trials if t.user_attrs.get("trained")), key=lambda t: t.values[0]):
        print(f"  {t.values[0]:8.3f} ms  {t.values[1] * 100:6.2f} %  {t.user_attrs['encoding']}")
    return 0


def cmd_report(args) -> int:
    out = write_report(args.storage, args.study, args.out)
    print(f"wrote {out}")
    return 0
