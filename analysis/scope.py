"""The world a study's verdicts are about: its data, its model and its training budget,
next to the official system's (shared/design/official_baseline.md).

A verdict reached on the CPU proxy with built-in synthetic data is a statement about that
proxy; every verdict line the platform prints carries this scope, so a reader never takes
it for a statement about the official 44.3 M-parameter model trained 120,000 steps on the
real recordings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analysis.record import StudyRecord

# The official run (rnn_args.yaml of Neuroprosthetics-Lab/nejm-brain-to-text): 45 sessions,
# 512 features, patch 14 / stride 4, 5 x 768 GRU, 41 classes, 120,000 batches with a
# 1,000-step warm-up and cosine decay to the last batch.
OFFICIAL = {"n_features": 512, "patch_size": 14, "n_units": 768, "n_layers": 5,
            "n_classes": 41, "n_days": 45, "steps": 120_000, "warmup": 1_000}


def parameter_count(n_features: int, n_days: int, patch_size: int, n_units: int,
                    n_layers: int, n_classes: int) -> int:
    """Parameters of trainable.model.GRUDecoder: a day layer (F x F weight and F bias) per
    session, the GRU (3H x input and 3H x H weights, two 3H biases per layer; layer 0
    reads F x patch_size inputs), the output layer and the learned h0."""
    day = n_days * (n_features * n_features + n_features)
    gru = 0
    for layer in range(n_layers):
        fan_in = n_features * patch_size if layer == 0 else n_units
        gru += 3 * n_units * fan_in + 3 * n_units * n_units + 6 * n_units
    return day + gru + n_units * n_classes + n_classes + n_units


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n < 10e6 else f"{n / 1e6:.1f} M"


@dataclass(frozen=True)
class Scope:
    data: str  # e.g. "built-in synthetic data v1 (fingerprint 1a2b3c4d5e6f, 8 sessions)"
    model: str  # e.g. "2x128 GRU, 0.53 M parameters, layer-0 fan-in 896"
    budget: str  # e.g. "400 steps, schedule compressed 300x (warm-up 40, decay to 400)"
    tag: str  # a short form for one console line
    official: bool  # the official model and schedule on real data

    @property
    def text(self) -> str:
        return f"data: {self.data}; model: {self.model}; budget: {self.budget}"


def data_kind(record: StudyRecord) -> str:
    """'synthetic v1', 'calibrated synthetic v2', ... or 'user data'."""
    data = record.data
    if not data.synthetic:
        return "user data"
    generator = data.generator or "v1"
    return f"{'calibrated ' if generator != 'v1' else ''}built-in synthetic {generator}"


def study_scope(record: StudyRecord) -> Scope:
    model, optim = record.train_config.model, record.train_config.optim
    features, patch = record.train_config.data.n_features, model.patch_size
    units, layers, classes = model.n_units, model.n_layers, model.n_classes
    params = parameter_count(features, record.data.n_sessions, patch, units, layers, classes)
    official_params = parameter_count(OFFICIAL["n_features"], OFFICIAL["n_days"],
                                      OFFICIAL["patch_size"], OFFICIAL["n_units"],
                                      OFFICIAL["n_layers"], OFFICIAL["n_classes"])
    kind = data_kind(record)
    data = (f"{kind} (fingerprint {record.data.fingerprint[:12]}, {record.data.n_sessions} "
            f"sessions, {record.data.n_train_trials} training trials)")
    same_model = (features, patch, units, layers) == (
        OFFICIAL["n_features"], OFFICIAL["patch_size"], OFFICIAL["n_units"],
        OFFICIAL["n_layers"])
    official_fan_in = OFFICIAL["n_features"] * OFFICIAL["patch_size"]
    model_text = (f"{layers}x{units} GRU, {_millions(params)} parameters, layer-0 fan-in "
                  f"{features * patch:,}" + ("" if same_model else
                                             f" (official 5x768, {_millions(official_params)}, "
                                             f"{official_fan_in:,})"))
    steps = record.budget_steps
    decay, warmup = optim.lr_decay_steps, optim.lr_warmup_steps
    factor = OFFICIAL["steps"] / decay if decay else float("inf")
    if abs(factor - 1.0) < 1e-9 and warmup == OFFICIAL["warmup"]:
        schedule = "the official schedule in real step units"
        if steps < decay:
            schedule += f", truncated at {steps:,} of {decay:,}"
    else:
        schedule = (f"schedule compressed {factor:.0f}x (warm-up {warmup:,}, decay to "
                    f"{decay:,}; official {OFFICIAL['warmup']:,} and {OFFICIAL['steps']:,})")
    budget = f"{steps:,} steps, {schedule}"
    short_schedule = "real schedule" if abs(factor - 1.0) < 1e-9 else f"{factor:.0f}x compressed"
    tag = (f"{kind.replace('built-in ', '')}, {layers}x{units} {_millions(params)}, "
           f"{steps:,} steps {short_schedule}")
    official = (not record.data.synthetic and same_model and abs(factor - 1.0) < 1e-9
                and steps >= OFFICIAL["steps"])
    return Scope(data=data, model=model_text, budget=budget, tag=tag, official=official)


def first_sentence(scope: Scope, confirmation: str) -> str:
    """The report's opening: what the verdicts are about, and what confirms them."""
    if scope.official:
        return (f"These verdicts are about the official model and schedule on the user's "
                f"data ({scope.data}). {confirmation}")
    return (f"These verdicts are about a proxy, not the official system: {scope.text}. "
            f"{confirmation}")


def confirmation(study_dir, record: StudyRecord, verdicts) -> str:
    """Whether a study of the same registered claims on other data than the built-in v1
    (calibrated synthetic or user data) sits beside this one, and how its verdicts agree
    (read from its report/claims.csv)."""
    import pandas as pd

    from analysis.record import STUDY_FILE, read_record
    from trainable.errors import UserError

    if record.claims is None or verdicts is None:
        return ""
    here = data_kind(record)
    if here != "built-in synthetic v1":
        return f"This study is itself on {here}."
    mine = dict(zip(verdicts["id"], verdicts["verdict"]))
    found = []
    for folder in sorted(Path(study_dir).parent.iterdir()):
        if folder == Path(study_dir) or not (folder / STUDY_FILE).is_file():
            continue
        try:
            other = read_record(folder)
        except UserError:
            continue
        table = folder / "report" / "claims.csv"
        if (other.claims is None or other.claims.sha256 != record.claims.sha256
                or data_kind(other) == here or not table.is_file()):
            continue
        theirs = pd.read_csv(table)
        # A preset's primary is not covered by the claims' hash: only the claims compare.
        shared = [(i, mine[i], v) for i, v in zip(theirs["id"], theirs["verdict"])
                  if i in mine and i != "primary"]
        agree = [i for i, a, b in shared if a == b]
        differ = [f"{i} ({a} here, {b} there)" for i, a, b in shared if a != b]
        found.append(f"study {other.name} on {data_kind(other)} ({study_scope(other).tag}) "
                     f"agrees on {len(agree)} of {len(shared)} claims"
                     + (f"; differs on {', '.join(differ)}" if differ else ""))
    if not found:
        return ("No confirmation on calibrated or real data exists beside it yet: the "
                "verdicts may not transfer to the official system.")
    return "Confirmation: " + "; ".join(found) + "."
