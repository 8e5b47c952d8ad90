"""Print a fold result's unweighted accuracy per view and corpus: python scripts/fold_table.py runs/x/fold_0.json ..."""

import json
import sys

for path in sys.argv[1:]:
    fold = json.load(open(path))
    views = fold.get("views", {})
    corpora = [c for c in views.get("clean", {}) if c != "all"] + ["all"]
    print(f"{path}: best epoch {fold.get('best_epoch')}, T {fold.get('temperature', 0):.2f}, {fold.get('seconds', 0):.0f} s")
    print(f"{'view':14}" + "".join(f"{c:>9}" for c in corpora))
    for view, per in views.items():
        print(f"{view:14}" + "".join(f"{per[c]['unweighted_accuracy']:9.3f}" if c in per else f"{'-':>9}" for c in corpora))
    if "clean" in views:
        print(f"{'ECE raw/cal':14}" + "".join(f"{views['clean'][c]['ece_uncalibrated']:.2f}/{views['clean'][c]['ece']:.2f}".rjust(9) for c in corpora))
