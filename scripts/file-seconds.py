"""Write tests/file-seconds.json: each test file's seconds in the last suite run here (pytest's
cache), the order a fresh clone's first run hands files out in (tests/conftest.py)."""

import collections
import json
from pathlib import Path

root = Path(__file__).resolve().parents[1]
recorded = json.loads((root / ".pytest_cache/v/reconciler/test-seconds").read_text())
per_file: collections.Counter[str] = collections.Counter()
for nodeid, seconds in recorded.items():
    per_file[Path(nodeid.split("::")[0]).name] += seconds
(root / "tests/file-seconds.json").write_text(
    json.dumps({name: round(s, 1) for name, s in per_file.most_common()}, indent=0) + "\n")
