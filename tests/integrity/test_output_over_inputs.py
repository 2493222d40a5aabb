"""No command writes over its own inputs (issue 21 items 1-4): every output and cache of
every command, aimed at every input path (plain, through a symbolic link, through
``..``), is refused before anything is written, and the inputs stay byte for byte."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from _helpers import paths
from _helpers.explain import explain_args
from click.testing import CliRunner

from isograph_gpu.cli import main
from isograph_gpu.errors import OutputError
from isograph_gpu.io.output import refuse_output_over_inputs, remove_stale_staging

DATA = paths.DATA / "isograph-0.1.5"
STRUCTURE = DATA / "structure"


def tree_state(root: Path) -> list[tuple[str, str, bytes | str | None]]:
    """Every entry under ``root`` (dot files included, links not followed): its path, its
    kind and its bytes (files) or target (links): any write, even an empty folder, shows."""
    state = []
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                state.append((rel, "link", os.readlink(path)))
            elif path.is_dir():
                state.append((rel, "dir", None))
            else:
                state.append((rel, "file", path.read_bytes()))
    return sorted(state)


def _forms(tmp: Path, target: Path, tag: str) -> dict[str, Path]:
    """``target`` as given, through a symbolic link, and through ``..``."""
    links = tmp / "links"
    links.mkdir(exist_ok=True)
    link = links / f"{tag}-{target.name}"
    if not link.is_symlink():
        link.symlink_to(target)
    detour = target.parent / ".." / target.parent.name / target.name
    return {"plain": target, "symlink": link, "dotdot": detour}


def _refused(args: list[str], tmp: Path) -> None:
    before = tree_state(tmp)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, (args, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert tree_state(tmp) == before, f"{args} wrote something before refusing"


@pytest.fixture
def explain_inputs(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "data"
    shutil.copytree(DATA / "inputs" / "artifact", root / "artifact")
    for name in ("feature_table.parquet", "feature_meta.parquet",
                 "module_score_table.parquet"):
        shutil.copy(DATA / "inputs" / name, root / name)
    shutil.copy(STRUCTURE / "transcript_structure_annotations.tsv", root / "annotation.tsv")
    return {"artifact": root / "artifact", "feature_table": root / "feature_table.parquet",
            "feature_meta": root / "feature_meta.parquet",
            "module_score_table": root / "module_score_table.parquet",
            "annotation": root / "annotation.tsv"}


def test_explain_output_dir_over_every_input_is_refused(explain_inputs, tmp_path):
    extra = ["--module-score-table", str(explain_inputs["module_score_table"]),
             "--annotation-table", str(explain_inputs["annotation"]), "--replace-output-dir"]
    for name, path in explain_inputs.items():
        # the input itself, and the folder holding it (the run replaces the whole folder)
        for target in {path, path.parent}:
            for given in _forms(tmp_path, target, name).values():
                _refused(explain_args(explain_inputs, given, *extra), tmp_path)


def test_feature_cache_over_every_explain_input_is_refused(explain_inputs, tmp_path):
    """--feature-cache follows the outputs' rule: aimed at any input of the run (the
    artifact's entries, the annotation table and the module score table included), as
    given, through a link or through ``..``, it is refused before anything is written."""
    extra = ["--module-score-table", str(explain_inputs["module_score_table"]),
             "--annotation-table", str(explain_inputs["annotation"])]
    targets = [p for name, p in explain_inputs.items() if name != "artifact"]
    targets += sorted(explain_inputs["artifact"].iterdir())
    for target in targets:
        for given in _forms(tmp_path, target, f"cache-{target.name}").values():
            _refused(explain_args(explain_inputs, tmp_path / "out", *extra,
                                  "--feature-cache", str(given)), tmp_path)


def test_explain_input_linked_into_the_output_dir_is_refused(explain_inputs, ref_inputs,
                                                             tmp_path):
    """Item 2: feature_scores.parquet in the artifact dir is a link into the output dir."""
    out = tmp_path / "out"
    first = CliRunner().invoke(main, explain_args(ref_inputs, out, "--module-ids", "M000"))
    assert first.exit_code == 0, first.output
    scores = explain_inputs["artifact"] / "feature_scores.parquet"
    shutil.move(scores, out / "feature_scores.parquet")
    scores.symlink_to(out / "feature_scores.parquet")
    _refused(explain_args(explain_inputs, out, "--replace-output-dir"), tmp_path)
    assert (out / "feature_scores.parquet").is_file()


@pytest.fixture
def structure_inputs(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "data"
    root.mkdir()
    return {"gtf": Path(shutil.copy(STRUCTURE / "synthetic.gtf", root / "synthetic.gtf")),
            "switch_pairs": Path(shutil.copy(STRUCTURE / "switch_pairs.tsv",
                                             root / "switch_pairs.tsv"))}


def test_annotate_structure_outputs_over_every_input_are_refused(structure_inputs, tmp_path):
    base = {"--gtf": structure_inputs["gtf"], "--switch-pairs": structure_inputs["switch_pairs"],
            "--output": tmp_path / "out.tsv", "--gtf-cache": tmp_path / "cache.parquet"}
    for option in ("--output", "--gtf-cache"):
        for name, path in structure_inputs.items():
            for given in _forms(tmp_path, path, name).values():
                args = {**base, option: given}
                _refused(["annotate-structure", *[str(x) for kv in args.items() for x in kv]],
                         tmp_path)
    # the output and the cache cannot be one file either
    same = {**base, "--gtf-cache": base["--output"]}
    _refused(["annotate-structure", *[str(x) for kv in same.items() for x in kv]], tmp_path)


def test_gtf_cache_over_the_gtf_is_refused_by_the_api(structure_inputs, tmp_path):
    from isograph_gpu.structure.cache import load_transcript_models

    gtf = structure_inputs["gtf"]
    before = gtf.read_bytes()
    for given in _forms(tmp_path, gtf, "api").values():
        with pytest.raises(OutputError, match=r"GTF cache .* is the input"):
            load_transcript_models(gtf, given)
    assert gtf.read_bytes() == before


def test_demo_refuses_a_folder_of_user_files_before_writing(tmp_path):
    """Item 4: a user's inputs/feature_table.parquet is not overwritten."""
    user = tmp_path / "mine"
    (user / "inputs").mkdir(parents=True)
    (user / "inputs" / "feature_table.parquet").write_bytes(b"the user's own table")
    (user / "notes.txt").write_text("keep me")
    for given in _forms(tmp_path, user, "demo").values():
        _refused(["demo", "--output-dir", str(given), "--samples", "12", "--genes", "20",
                  "--modules", "1", "--device", "cpu", "--quiet"], tmp_path)
    only_inputs = tmp_path / "only-inputs"
    (only_inputs / "inputs").mkdir(parents=True)
    (only_inputs / "inputs" / "feature_table.parquet").write_bytes(b"not the demo's")
    (only_inputs / "inputs" / "extra.csv").write_text("a,b\n")
    _refused(["demo", "--output-dir", str(only_inputs), "--quiet"], tmp_path)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    _refused(["demo", "--output-dir", str(a_file), "--quiet"], tmp_path)


def test_demo_reruns_into_its_own_folder(tmp_path):
    args = ["demo", "--output-dir", str(tmp_path / "d"), "--samples", "12", "--genes", "20",
            "--modules", "1", "--device", "cpu", "--quiet"]
    for _ in range(2):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output


def test_plot_inputs_inside_the_explain_dir_are_refused(ref_inputs, tmp_path):
    out = tmp_path / "out"
    first = CliRunner().invoke(main, explain_args(ref_inputs, out, "--module-ids", "M000"))
    assert first.exit_code == 0, first.output
    inside = out / "M000" / "copied_table.parquet"
    shutil.copy(ref_inputs["feature_table"], inside)
    for option in ("--feature-table", "--feature-meta"):
        for given in _forms(tmp_path, inside, option.strip("-")).values():
            _refused(["plot", "--explain-dir", str(out), option, str(given), "--quiet"],
                     tmp_path)


@pytest.mark.parametrize("name", ["o?t", "out[1]", "ou*", "[o]ut"])
def test_staging_of_a_glob_named_output_is_matched_exactly(tmp_path, name):
    """Item 3: clean-up for ``o?t`` must not touch the dead staging folders of ``out``."""
    neighbour = tmp_path / "out"
    neighbour.mkdir()
    dead = _dead_pid()
    stale = tmp_path / f".out.isograph-gpu-staging-{dead}-0badc0de"
    parked = tmp_path / f".out.isograph-gpu-staging-{dead}-0badc0de-old"
    for folder in (stale, parked):
        folder.mkdir()
        (folder / "f").write_text("neighbour's")
    before = tree_state(tmp_path)
    assert remove_stale_staging(tmp_path / name) == []
    assert tree_state(tmp_path) == before
    own = tmp_path / f".{name}.isograph-gpu-staging-{dead}-0123abcd"
    own.mkdir()
    assert remove_stale_staging(tmp_path / name) == [own]
    assert tree_state(tmp_path) == before


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_refuse_output_over_inputs_resolves_every_path(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    table = data / "t.parquet"
    table.write_bytes(b"x")
    hard = tmp_path / "hard.parquet"
    os.link(table, hard)
    linked_dir = tmp_path / "art"
    linked_dir.mkdir()
    (linked_dir / "scores.parquet").symlink_to(table)
    for output in (table, hard, data, tmp_path / "links" / ".." / "data" / "t.parquet"):
        with pytest.raises(OutputError, match="input"):
            refuse_output_over_inputs([output], [table])
    with pytest.raises(OutputError, match="holds the input"):
        refuse_output_over_inputs([data], [linked_dir])  # a folder's linked file
    with pytest.raises(OutputError, match="same path"):
        refuse_output_over_inputs([tmp_path / "o", tmp_path / "x" / ".." / "o"], [])
    # an output dir inside an input folder, a missing input, a DataFrame: fine
    refuse_output_over_inputs([data / "explain"], [data, tmp_path / "absent", object()])
