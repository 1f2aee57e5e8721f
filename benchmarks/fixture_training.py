"""Trained-model fixtures: small zoo models trained on Synthetic Shapes, cached.

Why: quantization accuracy can only be measured on a model that has learned
something, and no pretrained weights can be downloaded here. A fixture is a
``mobile_former_26m`` or ``mobilenet_v3_small_100`` with a 10-class head,
trained at low resolution on two CPU cores in minutes.

A fixture is identified by its key: model, resolution, seed, dataset version
and a hash of the training recipe. :func:`ensure_fixture` returns the cached
checkpoint of that key or trains it. The checkpoint is
``torch.save({"state_dict": ..., "meta": {...}})`` with ``meta`` made of plain
dicts, lists, strings and numbers only, so ``torch.load(weights_only=True)``
and :func:`mobexport.models.create_model` (``checkpoint=``) read it. It is
written to a temporary file and renamed into place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F

from mobexport import __version__
from mobexport.errors import CheckpointError, MobexportError, OutputDirError

from .accuracy import normalize, predict, top1, torch_logits
from .synthetic_shapes import CLASS_NAMES, DATASET_VERSION, NUM_CLASSES, generate

FIXTURE_MODELS = ("mobile_former_26m", "mobilenet_v3_small_100")
DEFAULT_RESOLUTION = 96
DEFAULT_THREADS = 2
CACHE_ENV = "MOBEXPORT_CACHE"


class FixtureError(MobexportError):
    """A fixture request is not valid (epochs, recipe) or its cached file is unusable."""


# -------------------------------------------------------------------- recipe


@dataclass(frozen=True)
class TrainRecipe:
    """Everything that decides the trained weights besides model, resolution and seed.

    ``batches_per_epoch`` caps an epoch (``None``: the whole training set); tests
    use it for runs of a few batches. Thread count is left out on purpose: it
    changes speed, not what is learned.
    """

    epochs: int = 10
    train_samples: int = 4000
    heldout_samples: int = 1000
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 4e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    warmup_fraction: float = 0.15  # one-cycle: share of steps spent warming up, then cosine down
    max_shift: float = 0.08        # random translation, as a fraction of the side
    flips: bool = True             # horizontal and vertical flips (no class changes under either)
    batches_per_epoch: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def steps_per_epoch(self) -> int:
        full = math.ceil(self.train_samples / self.batch_size)
        return full if self.batches_per_epoch is None else min(full, self.batches_per_epoch)

    def validate(self) -> "TrainRecipe":
        if self.epochs < 1:
            raise FixtureError(f"epochs must be at least 1, not {self.epochs}", "e.g. --epochs 6")
        if self.train_samples < 1 or self.heldout_samples < 1 or self.batch_size < 1:
            raise FixtureError("sample counts and batch size must be positive", "check the recipe")
        if self.batches_per_epoch is not None and self.batches_per_epoch < 1:
            raise FixtureError("batches_per_epoch must be positive or None", "check the recipe")
        if self.optimizer not in ("adamw", "sgd"):
            raise FixtureError(f"unknown optimizer '{self.optimizer}'", "use adamw or sgd")
        return self


def default_recipe(model_name: str, epochs: int | None = None) -> TrainRecipe:
    """The recipe a fixture of ``model_name`` is trained with (``epochs`` overrides its length)."""
    recipe = TrainRecipe()
    return recipe if epochs is None else replace(recipe, epochs=epochs)


# ----------------------------------------------------------------- the cache


def cache_dir() -> Path:
    """Where fixtures live: ``$MOBEXPORT_CACHE/fixtures``, else ``~/.cache/mobexport/fixtures``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "mobexport") / "fixtures"


def fixture_key(model_name: str, resolution: int, seed: int, recipe: TrainRecipe) -> str:
    return f"{model_name}-r{resolution}-s{seed}-d{DATASET_VERSION}-{recipe.digest()}"


def fixture_path(model_name: str, resolution: int = DEFAULT_RESOLUTION, seed: int = 0,
                 recipe: TrainRecipe | None = None, out_dir: str | Path | None = None) -> Path:
    recipe = recipe or default_recipe(model_name)
    return Path(out_dir or cache_dir()) / f"{fixture_key(model_name, resolution, seed, recipe)}.pt"


def read_fixture_meta(path: str | Path) -> dict:
    """The ``meta`` dict of a fixture checkpoint (loaded with ``weights_only=True``)."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"fixture '{path}' is unreadable ({type(exc).__name__})",
                              "delete it or re-train with --force") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("meta"), dict):
        raise CheckpointError(f"'{path}' is not a mobexport fixture (no meta)", "re-train with --force")
    return payload["meta"]


def default_threads() -> int:
    """Two torch threads (the 2-core machines this is sized for), but one when the CPU
    is already oversubscribed: there, two threads spin on each other and a training
    step took 6x longer than with one (measured; see docs/fixtures.md)."""
    cores = os.cpu_count() or 1
    threads = min(DEFAULT_THREADS, cores)
    try:
        busy = os.getloadavg()[0] >= cores
    except OSError:  # no load average on this platform
        busy = False
    return 1 if busy else threads


def check_request(model_name: str, resolution: int, seed: int = 0) -> None:
    """Raise the CLI's one-line errors for an unknown model, a resolution it cannot take, or a bad seed."""
    from mobexport.models import get_spec

    get_spec(model_name).check_resolution(resolution)
    if seed < 0:
        raise FixtureError(f"seed {seed} is negative", "use a seed of 0 or more")


# ------------------------------------------------------------------ progress


class TrainingReporter(Protocol):
    def start(self, title: str, total_batches: int) -> None: ...
    def batch(self, loss: float) -> None: ...
    def epoch(self, record: dict) -> None: ...
    def finish(self) -> None: ...


class SilentReporter:
    def start(self, title: str, total_batches: int) -> None: ...
    def batch(self, loss: float) -> None: ...
    def epoch(self, record: dict) -> None: ...
    def finish(self) -> None: ...


class RichReporter:
    """A bar over all batches of a run with ETA; one printed line per epoch."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._progress = None

    def start(self, title: str, total_batches: int) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self._progress = Progress(
            TextColumn("[bold]{task.fields[title]}[/]"), TextColumn("{task.description}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("batches"), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), console=self.console, transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("generating images", total=total_batches, title=title)
        self._title = title

    def batch(self, loss: float) -> None:
        self._progress.update(self._task, advance=1, description=f"loss {loss:.3f}")

    def epoch(self, record: dict) -> None:
        if record["epoch"] == 0:
            line = f"untrained: held-out top-1 {record['heldout_top1']:.1%}, loss {record['heldout_loss']:.3f}"
        else:
            line = (f"epoch {record['epoch']}: train loss {record['train_loss']:.3f}, "
                    f"held-out top-1 [bold]{record['heldout_top1']:.1%}[/], loss {record['heldout_loss']:.3f} "
                    f"({record['seconds']:.0f} s)")
        self._progress.console.print(f"[bold]{self._title}[/] {line}", highlight=False, soft_wrap=True)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()


# ------------------------------------------------------------------ training


@dataclass
class TrainingResult:
    """Trained weights, one history row per epoch, wall and CPU seconds (CPU time is
    what to compare across runs on a shared machine)."""

    state_dict: dict
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    threads: int = 1

    @property
    def heldout_top1(self) -> float:
        return self.history[-1]["heldout_top1"]


def augment(x: torch.Tensor, recipe: TrainRecipe, generator: torch.Generator) -> torch.Tensor:
    """Random flips and a random translation per image (edges replicated)."""
    n, _, h, w = x.shape
    if recipe.flips:
        flip_w = torch.rand(n, generator=generator) < 0.5
        flip_h = torch.rand(n, generator=generator) < 0.5
        x = torch.where(flip_w[:, None, None, None], x.flip(3), x)
        x = torch.where(flip_h[:, None, None, None], x.flip(2), x)
    pad = int(round(recipe.max_shift * h))
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, 3, h, w + 2 * pad)
        x = padded.gather(2, rows)
        cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, 3, h, w)
        x = x.gather(3, cols)
    return x


@functools.lru_cache(maxsize=4)
def _dataset(split: str, samples: int, resolution: int, seed: int, mean: tuple, std: tuple):
    """Normalised images and labels of a split, kept for the next model of the same run."""
    data = generate(samples, resolution, seed=seed, split=split)
    return torch.from_numpy(normalize(data.images, mean, std)), torch.from_numpy(data.labels)


def _optimizer(model: nn.Module, recipe: TrainRecipe) -> torch.optim.Optimizer:
    # No weight decay on norms and biases: it only fights the scale of BN.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=recipe.lr)


def _evaluate(model: nn.Module, inputs, labels) -> tuple[float, float]:
    model.eval()
    logits = predict(torch_logits(model), inputs, batch_size=128)
    loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
    return top1(logits, labels), loss


def train(model_name: str, resolution: int = DEFAULT_RESOLUTION, seed: int = 0, recipe: TrainRecipe | None = None,
          reporter: TrainingReporter | None = None, threads: int | None = None) -> TrainingResult:
    """Train ``model_name`` with a 10-class head on Synthetic Shapes; returns weights and per-epoch history.

    History row 0 is the untrained model; row ``e`` is after epoch ``e``. ``threads``
    defaults to :func:`default_threads`.
    """
    from mobexport.models import create_model, get_spec

    recipe = (recipe or default_recipe(model_name)).validate()
    check_request(model_name, resolution, seed)
    reporter = reporter or SilentReporter()
    spec = get_spec(model_name)
    threads = threads or default_threads()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)

    steps = recipe.steps_per_epoch()
    reporter.start(model_name, recipe.epochs * steps)
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        needed = min(recipe.train_samples, steps * recipe.batch_size * recipe.epochs)
        norm = (tuple(spec.mean), tuple(spec.std))
        train_x, train_y = _dataset("train", needed, resolution, seed, *norm)
        heldout_x, heldout_y = (t.numpy() for t in _dataset("heldout", recipe.heldout_samples, resolution, seed, *norm))

        model = create_model(model_name, num_classes=NUM_CLASSES)
        optimizer = _optimizer(model, recipe)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps, pct_start=recipe.warmup_fraction,
            anneal_strategy="cos", cycle_momentum=recipe.optimizer == "sgd",
        )
        acc, loss = _evaluate(model, heldout_x, heldout_y)
        history = [{"epoch": 0, "train_loss": None, "heldout_top1": acc, "heldout_loss": loss,
                    "seconds": time.perf_counter() - started}]
        reporter.epoch(history[0])

        for epoch in range(1, recipe.epochs + 1):
            model.train()
            order = torch.randperm(len(train_y), generator=generator)
            losses = []
            for step in range(steps):
                index = order[(step * recipe.batch_size) % len(order):][: recipe.batch_size]
                x = augment(train_x[index], recipe, generator)
                loss = F.cross_entropy(model(x), train_y[index], label_smoothing=recipe.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                reporter.batch(losses[-1])
            acc, heldout_loss = _evaluate(model, heldout_x, heldout_y)
            history.append({"epoch": epoch, "train_loss": sum(losses) / len(losses), "heldout_top1": acc,
                            "heldout_loss": heldout_loss, "seconds": time.perf_counter() - started})
            reporter.epoch(history[-1])
    finally:
        reporter.finish()
        torch.set_num_threads(previous_threads)
    model.eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return TrainingResult(state, history, time.perf_counter() - started, time.process_time() - cpu_started,
                          threads)


# ------------------------------------------------------------- the checkpoint


def _meta(model_name: str, resolution: int, seed: int, recipe: TrainRecipe, result: TrainingResult) -> dict:
    from mobexport.models import get_spec

    spec = get_spec(model_name)
    meta = {
        "kind": "mobexport-fixture",
        "key": fixture_key(model_name, resolution, seed, recipe),
        "model": model_name,
        "num_classes": NUM_CLASSES,
        "resolution": int(resolution),
        "seed": int(seed),
        "dataset": {"name": "synthetic_shapes", "version": DATASET_VERSION, "classes": list(CLASS_NAMES),
                    "train_samples": recipe.train_samples, "heldout_samples": recipe.heldout_samples},
        "preprocessing": {"mean": [float(v) for v in spec.mean], "std": [float(v) for v in spec.std]},
        "recipe": recipe.to_dict(),
        "recipe_hash": recipe.digest(),
        "heldout_top1": float(result.heldout_top1),
        "history": result.history,
        "train_seconds": float(result.seconds),
        "train_cpu_seconds": float(result.cpu_seconds),
        "threads": int(result.threads),
        "torch": str(torch.__version__),
        "mobexport": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    # A JSON round trip turns str subclasses (torch's TorchVersion), tuples and numpy
    # scalars into the plain types that torch.load(weights_only=True) accepts.
    return json.loads(json.dumps(meta))


def save_fixture(path: Path, state_dict: dict, meta: dict) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename into place."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputDirError(f"cannot write fixtures to '{path.parent}': {exc.strerror}",
                             f"pass --out DIR or set {CACHE_ENV} to a writable directory") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"state_dict": state_dict, "meta": meta}, f)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; a cache entry is not secret
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class FixtureOutcome:
    """What :func:`obtain_fixture` did: the checkpoint, its meta, and whether it trained now."""

    path: Path
    meta: dict
    trained: bool


def obtain_fixture(model_name: str, resolution: int = DEFAULT_RESOLUTION, seed: int = 0, *,
                   recipe: TrainRecipe | None = None, out_dir: str | Path | None = None, force: bool = False,
                   reporter: TrainingReporter | None = None, threads: int | None = None) -> FixtureOutcome:
    """The cached fixture of this key, trained first if missing (or if ``force``)."""
    recipe = (recipe or default_recipe(model_name)).validate()
    check_request(model_name, resolution, seed)
    path = fixture_path(model_name, resolution, seed, recipe, out_dir)
    if path.is_file() and not force:
        return FixtureOutcome(path, read_fixture_meta(path), trained=False)
    result = train(model_name, resolution, seed, recipe, reporter=reporter, threads=threads)
    meta = _meta(model_name, resolution, seed, recipe, result)
    save_fixture(path, result.state_dict, meta)
    return FixtureOutcome(path, meta, trained=True)


def ensure_fixture(model_name: str, resolution: int = DEFAULT_RESOLUTION, seed: int = 0, *,
                   recipe: TrainRecipe | None = None, out_dir: str | Path | None = None, force: bool = False,
                   reporter: TrainingReporter | None = None, threads: int | None = None) -> Path:
    """Path of the trained checkpoint for ``(model, resolution, seed, recipe)``; trains it if not cached.

    Load it with ``create_model(model_name, checkpoint=path, num_classes=10)``.
    """
    return obtain_fixture(model_name, resolution, seed, recipe=recipe, out_dir=out_dir, force=force,
                          reporter=reporter, threads=threads).path
