"""docs/ARCHITECTURE.md is the map of the package: its tree names every module under
isograph_gpu/ exactly once (one line each), and nothing else, so it cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "isograph_gpu"
ENTRY = re.compile(r"^(?P<indent>(?:  )*)(?P<name>\w+(?:\.py|/))(?: +(?P<text>\S.*))?$")


def mapped_modules(text: str) -> list[str]:
    """The paths (relative to isograph_gpu/) of the modules the tree block names, from its
    two-space indentation; a line that is not one entry is an error."""
    block = re.search(r"```\nisograph_gpu/\n(.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md has no isograph_gpu/ tree block"
    folders: list[str] = []
    modules = []
    for line in block.group(1).splitlines():
        entry = ENTRY.match(line)
        assert entry, f"not one module per line: {line!r}"
        depth = len(entry["indent"]) // 2 - 1
        assert 0 <= depth <= len(folders), f"bad indentation: {line!r}"
        assert entry["text"], f"no description: {line!r}"
        del folders[depth:]
        if entry["name"].endswith("/"):
            folders.append(entry["name"].rstrip("/"))
        else:
            modules.append("/".join([*folders, entry["name"]]))
    return modules


def package_modules() -> list[str]:
    return sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                  if "__pycache__" not in p.parts)


def test_architecture_tree_matches_the_package():
    mapped = mapped_modules((ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    assert len(mapped) == len(set(mapped)), "a module is listed twice"
    actual = package_modules()
    assert sorted(mapped) == actual, {"not in the map": sorted(set(actual) - set(mapped)),
                                      "not in the package": sorted(set(mapped) - set(actual))}


def test_tree_parser_rejects_drift():
    """The comparison can fail: a missing, an extra and a wrapped line are all caught."""
    good = "```\nisograph_gpu/\n  a.py  x\n  io/  y\n    b.py  z\n```"
    assert mapped_modules(good) == ["a.py", "io/b.py"]
    try:
        mapped_modules(good.replace("    b.py  z\n", "    b.py  z\n          wrapped text\n"))
    except AssertionError:
        pass
    else:
        raise AssertionError("a wrapped description line was accepted")


def test_manifest_file_name_is_defined_once():
    """One home for the manifest's name: manifest.MANIFEST; no other module spells it."""
    from isograph_gpu.manifest import MANIFEST

    spelled = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
               if f'"{MANIFEST}"' in p.read_text(encoding="utf-8")
               or f"'{MANIFEST}'" in p.read_text(encoding="utf-8")]
    assert spelled == ["manifest.py"]
