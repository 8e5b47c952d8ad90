"""The README's accuracy table from an evaluation: python -m scripts.accuracy_table runs/eval/evaluation.json

Unweighted accuracy, mean +- std over the speaker folds, per corpus and pooled, for every
view the folds scored (as recorded, degradations, lengths), in percent, as Markdown; then
each leave-one-corpus-out run's views.
"""

from __future__ import annotations

import json
import sys

from ser.config import EVALUATION_VIEWS

ORDER = ("ravdess", "emodb", "nemo", "ased")  # the README's columns; other corpora after them


def corpus_columns(names) -> list[str]:
    """The corpora among `names` (not "all") in the README's order."""
    return sorted((c for c in names if c != "all"), key=lambda c: (ORDER.index(c) if c in ORDER else len(ORDER), c))


def main(argv: list[str] | None = None) -> None:
    (path,) = sys.argv[1:] if argv is None else argv
    evaluation = json.load(open(path))
    if "speaker_cv" in evaluation:  # a leave-one-corpus-out run alone has no folds
        by_view = evaluation["speaker_cv"]["by_view"]
        corpora = corpus_columns(by_view["clean"])
        print("| test speakers' clips | " + " | ".join(corpora) + " | all |")
        print("|---" * (len(corpora) + 2) + "|")
        for view, label in EVALUATION_VIEWS.items():
            if view in by_view:
                cells = []
                for c in [*corpora, "all"]:
                    ua = by_view[view][c]["unweighted_accuracy"]
                    cells.append(f"{100 * ua['mean']:.1f} ± {100 * ua['std']:.1f}")
                print(f"| {label} | " + " | ".join(cells) + " |")
    for corpus, part in evaluation.get("leave_one_corpus_out", {}).items():
        views = ", ".join(f"{EVALUATION_VIEWS.get(v, v)} {100 * m[corpus]['unweighted_accuracy']:.1f}"
                          for v, m in part["views"].items())  # fmt: skip
        print(f"never heard (trained on the others): {corpus} UA % {views}")


if __name__ == "__main__":
    main()
