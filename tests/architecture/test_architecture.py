"""docs/ARCHITECTURE.md's tree block is the map of the package: it lists every module
under isograph_gpu/ exactly once, one entry per line with a description, and no module
that is not there. (The prose around the tree is not checked.) Also: the manifest's file
name is spelled in one module only."""

from __future__ import annotations

import re

import pytest
from _helpers import paths

ROOT = paths.REPO
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


def drift(mapped: list[str], actual: list[str]) -> dict[str, list[str]]:
    """What keeps the tree's entries ``mapped`` from being the package's modules
    ``actual``: modules listed twice, not in the map, not in the package (empty: none)."""
    problems = {"listed twice": sorted({m for m in mapped if mapped.count(m) > 1}),
                "not in the map": sorted(set(actual) - set(mapped)),
                "not in the package": sorted(set(mapped) - set(actual))}
    return {what: names for what, names in problems.items() if names}


def test_architecture_tree_matches_the_package():
    mapped = mapped_modules((ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    assert drift(mapped, package_modules()) == {}


def test_tree_check_catches_drift():
    """Each way the map can drift is caught: a missing, an extra and a twice-listed
    module, and a line that is not one entry (wrapped text, bad indentation, no
    description)."""
    good = "```\nisograph_gpu/\n  a.py  x\n  io/  y\n    b.py  z\n```"
    package = ["a.py", "io/b.py"]
    assert mapped_modules(good) == package and drift(mapped_modules(good), package) == {}
    assert drift(mapped_modules(good.replace("    b.py  z\n", "")), package) == {
        "not in the map": ["io/b.py"]}
    extra = good.replace("  io/", "  c.py  w\n  io/")
    assert drift(mapped_modules(extra), package) == {"not in the package": ["c.py"]}
    twice = good.replace("  io/", "  a.py  again\n  io/")
    assert drift(mapped_modules(twice), package) == {"listed twice": ["a.py"]}
    for bad, message in (
            (good.replace("    b.py  z\n", "    b.py  z\n          wrapped text\n"),
             "not one module per line"),
            (good.replace("  a.py  x", "      a.py  x"), "bad indentation"),
            (good.replace("  a.py  x", "  a.py"), "no description")):
        with pytest.raises(AssertionError, match=message):
            mapped_modules(bad)


def test_manifest_file_name_is_defined_once():
    """One home for the manifest's name: manifest.MANIFEST; no other module spells it."""
    from isograph_gpu.manifest import MANIFEST

    spelled = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
               if f'"{MANIFEST}"' in p.read_text(encoding="utf-8")
               or f"'{MANIFEST}'" in p.read_text(encoding="utf-8")]
    assert spelled == ["manifest.py"]
