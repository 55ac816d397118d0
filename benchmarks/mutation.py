"""Mutation testing with mutmut (a measurement, not a CI gate).

    pip install mutmut                      # 3.x
    python benchmarks/mutation.py trainer   # trainable/monitor.py, decode.py, augment.py
    python benchmarks/mutation.py gru       # trainable/gru.py, model.py (the fast CPU path)
    python benchmarks/mutation.py analysis --sample 250   # analysis/stats/, claims/,
                                            # study/planner.py: a sample

Copies the committed tree (git archive HEAD) to a temporary folder, writes the mutmut
configuration for the chosen group there (source files and the tests that pin them), runs
`mutmut run`, and prints: mutants, killed, survived, without tests, timeouts, and the score
killed / (all - equivalent), where the equivalent mutants are the ones listed with their
reason in benchmarks/mutation_equivalent.txt. Survivors not on that list are printed with
their diff line: each is a missing test or a new equivalent to record.

`--sample N` tests a simple random sample of N mutants (drawn with --seed from every
mutant mutmut generates, after its test-coverage pass) where the full set would take
hours; the score is then the sample's, printed with a 95% Clopper-Pearson interval for
the whole set's score. Only the fast tests run (`-m "not ray and not slow"`).
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUPS = {
    "trainer": (["trainable/monitor.py", "trainable/decode.py", "trainable/augment.py"],
                ["tests/test_monitor.py", "tests/test_trainer.py", "tests/test_gru.py",
                 "tests/test_variants.py"]),
    "gru": (["trainable/gru.py", "trainable/model.py"],
            ["tests/test_gru.py", "tests/test_trainer.py"]),
    "analysis": (["analysis/stats", "analysis/claims", "study/planner.py"],
                 ["tests/test_analysis_stats.py", "tests/test_analysis_claims.py",
                  "tests/test_adaptive.py"]),
}
# Tests that cannot run on mutmut's instrumented copy: each mutated function is wrapped in
# a trampoline, so torch.compile traces more than one graph whatever the mutant does.
DESELECT = {
    "gru": ["tests/test_gru.py::test_compiled_decoder_keeps_one_graph_whatever_days_a_batch_holds"],
}


def equivalents() -> dict[str, str]:
    listed = {}
    for line in (ROOT / "benchmarks" / "mutation_equivalent.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, why = line.partition(" ")
            listed[name] = why.strip()
    return listed


def _statuses(work: Path) -> dict[str, str]:
    results = subprocess.run(["mutmut", "results", "--all", "true"], cwd=work,
                             capture_output=True, text=True).stdout
    return dict(re.findall(r"^\s*(\S+__mutmut_\d+): (.+)$", results, re.M))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("group", choices=GROUPS)
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--sample", type=int, default=None,
                        help="test a random sample of this many mutants (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed")
    args = parser.parse_args()
    sources, tests = GROUPS[args.group]
    deselect = [arg for test in DESELECT.get(args.group, []) for arg in ("--deselect", test)]
    with tempfile.TemporaryDirectory(prefix="b2t-mutation-") as tmp:
        work = Path(tmp)
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x"], cwd=work, input=archive, check=True)
        config = (
            "\n[tool.mutmut]\n"
            f"source_paths = {sources!r}\n"
            f"pytest_add_cli_args_test_selection = {tests!r}\n"
            f"pytest_add_cli_args = {['-n', '0', '-m', 'not ray and not slow', *deselect]!r}\n"
            'also_copy = ["configs", "tests", "analysis", "study", "trainable", "benchmarks"]\n'
        ).replace("'", '"')
        with open(work / "pyproject.toml", "a") as fh:
            fh.write(config)
        chosen: list[str] = []
        if args.sample:
            # generate the mutants and map tests to functions, test no mutant (the filter
            # matches none), then draw the sample from every generated mutant
            subprocess.run(["mutmut", "run", "b2t-sampling-no-mutant-has-this-name"],
                           cwd=work, capture_output=True, check=False)
            every = sorted(_statuses(work))
            chosen = sorted(random.Random(args.seed).sample(every, min(args.sample,
                                                                       len(every))))
            print(f"{args.group}: a sample of {len(chosen)} of {len(every)} mutants "
                  f"(seed {args.seed})")
        subprocess.run(["mutmut", "run", "--max-children", str(args.max_children), *chosen],
                       cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        status = _statuses(work)
        if chosen:
            status = {m: status[m] for m in chosen}
        known = equivalents()
        counts: dict[str, int] = {}
        for state in status.values():
            counts[state] = counts.get(state, 0) + 1
        survivors = [m for m, s in status.items() if s in ("survived", "no tests")]
        unexplained = [m for m in survivors if m not in known]
        # a mutant that hangs or crashes the test process is detected as well as killed
        killed = sum(counts.get(k, 0) for k in ("killed", "timeout", "segfault"))
        equivalent = len([m for m in survivors if m in known])
        print(f"{args.group}: {len(status)} mutants of {', '.join(sources)}")
        print("  " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        print(f"  equivalent (benchmarks/mutation_equivalent.txt): {equivalent}")
        score = killed / max(len(status) - equivalent, 1)
        print(f"  score: detected / non-equivalent = {killed}/{len(status) - equivalent} = "
              f"{score:.1%}")
        if chosen:
            from statsmodels.stats.proportion import proportion_confint

            low, high = proportion_confint(killed, len(status) - equivalent, method="beta")
            print(f"  the whole set's score, 95% Clopper-Pearson: [{low:.1%}, {high:.1%}]")
        for name in unexplained:
            diff = subprocess.run(["mutmut", "show", name], cwd=work, capture_output=True,
                                  text=True).stdout
            plus = next((ln for ln in diff.splitlines() if ln.startswith("+ ")), "")
            print(f"  survived: {name}: {plus[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
