"""What each part of Mobile-Former costs on a runtime: the model with one part taken out, timed side by side.

    python -m mobexport.benchmarks.studies.mobile_former_ablation [--model mobile_former_294m]
        [--runtimes onnx,executorch] [--resolution 224] [--threads 1] [--rounds 20] [--out DIR]

An op profile says which *kernels* take the time; this says which *part of
the architecture* does, including the glue a profiler spreads over many
small rows (reorders, reshapes, per-op dispatch). Each variant is the zoo
model with one part replaced by what lets the rest run unchanged:

* ``no_dynamic_relu``: every DY-ReLU becomes a plain ReLU (its hyper-function goes too);
* ``no_mobile_to_former``: the tokens skip reading the map (the first
  stand-in keeps them image-dependent, see :class:`TokensTouch`);
* ``no_former``: the tokens skip their transformer layer;
* ``no_former_to_mobile``: the map skips reading the tokens;
* ``mobile_only``: all four at once, a MobileNet with Mobile-Former's convs.

The variants are exported through the normal pipeline with the default
passes (static, at ``--resolution``) as user models
(``mobexport.benchmarks.studies.mobile_former_ablation:<variant>``), so the
passes see exactly what they see in the full model, and timed interleaved in
worker processes with the baseline (MobileNetV3-L), as
:mod:`.compiler_benchmark` times. The cost of a part is the paired per-round
difference full - variant; the variants do not compute the model's function,
so no accuracy is implied, only where the time goes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn as nn

PARTS = ("no_dynamic_relu", "no_mobile_to_former", "no_former", "no_former_to_mobile", "mobile_only")
VARIANTS = ("full",) + PARTS
BASELINE = "mobilenet_v3_large_100"


class PlainReLU(nn.Module):
    """Stands in for a DY-ReLU: ignores the coefficients."""

    def forward(self, x: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


class TokensPass(nn.Module):
    """Stands in for Mobile->Former: the tokens come out as they went in."""

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return z


class TokensTouch(TokensPass):
    """The first stand-in for Mobile->Former: the tokens plus nothing that still depends on the image.

    Without it the tokens, and so every DY-ReLU coefficient, would be
    constants, and ``fold_dynamic_relu`` would turn each DY-ReLU into a
    static PReLU: a different model, not the one without its bridges.
    """

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return z + 0.0 * x.mean(dim=(1, 2, 3))[:, None, None]


class MapPass(nn.Module):
    """Stands in for Mobile<-Former: the map comes out as it went in."""

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return x


def ablated(model: str = "mobile_former_294m", drop: tuple[str, ...] = ()) -> nn.Module:
    """The zoo ``model`` with the parts in ``drop`` (names from :data:`PARTS`, without ``no_``) taken out."""
    from mobexport.models import create_model

    net = create_model(model).eval()
    first_bridge = True
    for block in list(net.features) + [net]:
        if "dynamic_relu" in drop:
            for name in ("act1", "act2", "act3"):
                if hasattr(block, name):
                    setattr(block, name, PlainReLU())
        if "mobile_to_former" in drop and hasattr(block, "local_global"):
            block.local_global = TokensTouch() if first_bridge else TokensPass()
            first_bridge = False
        if "former" in drop and hasattr(block, "global_block"):
            block.global_block = nn.Identity()
        if "former_to_mobile" in drop and hasattr(block, "global_local"):
            block.global_local = MapPass()
    return net


def full(model: str = "mobile_former_294m") -> nn.Module:
    return ablated(model)


def no_dynamic_relu(model: str = "mobile_former_294m") -> nn.Module:
    return ablated(model, ("dynamic_relu",))


def no_mobile_to_former(model: str = "mobile_former_294m") -> nn.Module:
    return ablated(model, ("mobile_to_former",))


def no_former(model: str = "mobile_former_294m") -> nn.Module:
    return ablated(model, ("former",))


def no_former_to_mobile(model: str = "mobile_former_294m") -> nn.Module:
    return ablated(model, ("former_to_mobile",))


def mobile_only(model: str = "mobile_former_294m") -> nn.Module:
    return ablated(model, ("dynamic_relu", "mobile_to_former", "former", "former_to_mobile"))


def reference(variant: str) -> str:
    return f"{__name__}:{variant}"


def variant_of(model: str) -> str:
    """The variant of a :func:`reference`; a zoo name (the baseline) as it is."""
    return model.rsplit(":", 1)[-1]


def run(args) -> dict:
    from rich.console import Console
    from rich.table import Table

    from .compiler_benchmark import Case, build_with_pipeline, paired_ratio, progress_bar, split, time_groups

    console = Console()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runtimes = split(args.runtimes)
    names = [reference(v) for v in VARIANTS] + [args.baseline]
    cases = [Case(model=name, build="mobexport", target=rt, resolution=args.resolution)
             for rt in runtimes for name in names]
    with progress_bar(console) as progress:
        task = progress.add_task("build", total=len(cases))
        for case in cases:
            progress.update(task, description=f"build {variant_of(case.model)} {case.target}")
            build_with_pipeline(case, out / case.target, args.rebuild, model_kwargs={"model": args.model}
                                if ":" in case.model else None)
            progress.advance(task)
        timed = time_groups(cases, [(rt, args.resolution, args.threads) for rt in runtimes], args.rounds,
                            args.per_round, progress, console)
    summary = {"model": args.model, "resolution": args.resolution, "threads": args.threads, "runtimes": {}}
    for rt in runtimes:
        group = timed[(rt, args.resolution, args.threads)]
        by_variant = {variant_of(c.model): c for c in group["cases"].values()}
        whole, base = by_variant.get("full"), by_variant.get(args.baseline)
        rows = []
        for variant in VARIANTS + (args.baseline,):
            case = by_variant.get(variant)
            if case is None or not case.samples_ms:
                continue
            vs_full = paired_ratio(case, whole, args.per_round)
            rows.append({"variant": variant, "median_ms": round(case.median, 3),
                         "vs_baseline": round(paired_ratio(case, base, args.per_round) or float("nan"), 3),
                         "saves_ms": round(whole.median * (1 - vs_full), 3) if vs_full else None})
        summary["runtimes"][rt] = {"rows": rows, "load_average": group["load_average"]}
        table = Table(title=f"{args.model} parts on {rt} @{args.resolution}, {args.threads} thread(s), fp32 "
                            f"(medians; ratios are medians of per-round ratios; load "
                            f"{group['load_average'].get('mean', float('nan')):.2f})")
        for col in ("variant", "median ms", f"x {args.baseline}", "part costs (ms)"):
            table.add_column(col, justify="left" if col == "variant" else "right")
        for r in rows:
            table.add_row(r["variant"], f"{r['median_ms']:.2f}", f"{r['vs_baseline']:.2f}",
                          "-" if r["saves_ms"] is None or r["variant"] in ("full", args.baseline)
                          else f"{r['saves_ms']:.2f}")
        console.print(table)
    (out / "mobile_former_ablation.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mobile_former_294m")
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--runtimes", default="onnx,executorch")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=2)
    parser.add_argument("--out", default="mobexport-out/mobile-former-ablation")
    parser.add_argument("--rebuild", action="store_true")
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
