"""Food-11 as the lab lays it out: SRC/**/<split>/<class>_<n>.jpg -> DST/<split>/class_<class:02d>/.

Usage: relayout_food11.py SRC DST   (DST must not exist; files are moved, not copied)
"""

import re
import sys
from pathlib import Path

SPLITS = ("training", "validation", "evaluation")
NAME = re.compile(r"^(\d+)_\d+\.jpe?g$", re.IGNORECASE)


def main(src: Path, dst: Path) -> int:
    moved = 0
    for split in SPLITS:
        dirs = sorted(
            d
            for d in src.rglob(split)
            if d.is_dir() and not any(part.startswith((".", "__MACOSX")) for part in d.relative_to(src).parts)
        )
        if not dirs:
            print(f"no {split}/ under {src}", file=sys.stderr)
            return 1
        for f in sorted(p for p in dirs[0].iterdir() if p.is_file()):
            m = NAME.match(f.name)
            if not m or not 0 <= int(m.group(1)) <= 10:
                continue
            target = dst / split / f"class_{int(m.group(1)):02d}"
            target.mkdir(parents=True, exist_ok=True)
            f.rename(target / f.name)
            moved += 1
    print(f"moved {moved} images into {dst}")
    return 0 if moved else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
