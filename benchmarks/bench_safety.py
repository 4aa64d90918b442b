"""Precision and recall of each content filter on the labelled adversarial/benign set
(``mm_feast.synthetic_safety``: the test cases plus the known-hard paraphrases), and scan time per
file by modality.

    python -m benchmarks.bench_safety

A filter's positives are the files built to trip it; it is right on one when it flags or blocks
it, wrong on a benign control when it fires there. Files built for another filter are left out of
that filter's precision (several filters may rightly fire on one attack), and listed.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from mm_feast.governance.scan import scan_file
from mm_feast.media import detect
from mm_feast.synthetic_safety import CASES, HARD_CASES, write_safety_corpus


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="mm-feast-bench-safety-"))
    cases = write_safety_corpus(root, CASES + HARD_CASES)
    scan_file(root / cases[0].name)  # load MiniLM once, outside the timings
    fired: dict[str, set[str]] = {}
    verdicts: dict[str, str] = {}
    seconds: dict[str, list[float]] = defaultdict(list)
    for case in cases:
        start = time.perf_counter()
        verdict = scan_file(root / case.name)
        seconds[detect(root / case.name)].append(time.perf_counter() - start)
        fired[case.name] = {f.filter for f in verdict.findings if f.level != "allow"}
        verdicts[case.name] = verdict.verdict
    filters = sorted({c.target for c in cases if c.target})
    benign = [c for c in cases if c.target is None]
    print(f"{len(cases)} files: {len(cases) - len(benign)} adversarial, {len(benign)} benign")
    print(f"{'filter':<22} {'positives':>9} {'caught':>6} {'recall':>6} {'false pos':>9} {'precision':>9}  also fired on")
    for name in filters:
        positives = [c for c in cases if c.target == name]
        caught = sum(1 for c in positives if name in fired[c.name])
        false_positive = sum(1 for c in benign if name in fired[c.name])
        others = sorted(c.name for c in cases if c.target not in (None, name) and name in fired[c.name])
        precision = caught / (caught + false_positive) if caught + false_positive else float("nan")
        print(f"{name:<22} {len(positives):>9} {caught:>6} {caught / len(positives):>6.2f} {false_positive:>9} {precision:>9.2f}  {', '.join(others)}")
    right = sum(1 for c in cases if verdicts[c.name] == c.expected)
    print(f"file verdicts as expected: {right}/{len(cases)}; benign files flagged or blocked: "
          f"{sum(1 for c in benign if verdicts[c.name] != 'allow')}/{len(benign)}")
    print(f"{'modality':<8} {'files':>5} {'p50 ms':>7} {'max ms':>7}")
    for modality, values in sorted(seconds.items()):
        print(f"{modality:<8} {len(values):>5} {1000 * statistics.median(values):>7.1f} {1000 * max(values):>7.1f}")


if __name__ == "__main__":
    main()
