"""pipelinejobs.docs: the README's state table, diagram and token rules are generated from the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType

import pytest

import jobcore.states
from jobcore.states import TRANSITIONS, Actor, State, Transition
from jobcore.tokens import RotationPolicy
from pipelinejobs import docs

ROOT = Path(__file__).resolve().parents[2]
EDGE = re.compile(r"^    (\S+) --> (\S+): (.+)$")
MARKERS = (
    "<!-- BEGIN GENERATED: states -->",
    "<!-- END GENERATED: states -->",
    "<!-- BEGIN GENERATED: tokens -->",
    "<!-- END GENERATED: tokens -->",
    "<!-- BEGIN GENERATED: configuration -->",
    "<!-- END GENERATED: configuration -->",
)
README_TEMPLATE = """# title

intro kept as is

{0}
old states text
{1}

## Tokens

{2}
{3}

## Configuration

{4}
{5}

footer kept as is
"""


def table_rows(table: str) -> list[list[str]]:
    lines = table.strip().splitlines()
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]


def diagram_triples(diagram: str) -> set[tuple[str, str, str]]:
    """(from, to, event) of every arrow, with the ANY pseudo-state expanded to every state."""
    triples = set()
    for line in diagram.splitlines():
        match = EDGE.match(line)
        if not match or match.group(1) == "[*]":
            continue
        source, target, label = match.groups()
        sources = [s.value for s in State] if source == "ANY" else [source]
        for event in label.split(", "):
            for s in sources:
                triples.add((s, target, event))
    return triples


def table_triples(table: MappingProxyType) -> set[tuple[str, str, str]]:
    """(from, to, event) for every allowed pair; unchanged events loop, delete ends at [*]."""
    triples = set()
    for event, row in table.items():
        for source in row.sources:
            if row.target is not None:
                target = row.target.value
            else:
                target = "[*]" if event == "delete" else source.value
            triples.add((source.value, target, event))
    return triples


@pytest.fixture
def modified_table(monkeypatch: pytest.MonkeyPatch) -> MappingProxyType:
    """TRANSITIONS with a new event (`pause`, RUNNING -> CREATED, callback allowed) and `cancel` also
    allowed from RUNNING, patched where the core and the docs read it."""
    rows = dict(TRANSITIONS)
    rows["pause"] = Transition(
        frozenset({State.RUNNING}), State.CREATED, frozenset({Actor.CALLBACK, Actor.ADMIN}), "pause it"
    )
    cancel = rows["cancel"]
    rows["cancel"] = Transition(
        cancel.sources | {State.RUNNING}, cancel.target, cancel.actors, "stop it, even while it runs"
    )
    table = MappingProxyType(rows)
    monkeypatch.setattr(jobcore.states, "TRANSITIONS", table)
    monkeypatch.setattr(docs, "TRANSITIONS", table)
    return table


# -- the state table ------------------------------------------------------------------------------------


def test_state_table_has_one_row_per_event_in_table_order() -> None:
    # when the table is rendered
    rows = table_rows(docs.render_state_table())
    # then there is one row per event, in TRANSITIONS order, with the five columns
    assert [row[0] for row in rows] == [f"`{event}`" for event in TRANSITIONS]
    assert all(len(row) == 5 for row in rows)
    assert docs.render_state_table().startswith("| event | from | to | who | what it does |\n|---|")


def test_state_table_rows_say_what_the_table_says() -> None:
    rows = {row[0].strip("`"): row for row in table_rows(docs.render_state_table())}
    assert rows["run"][1:4] == ["CREATED, RUNNING", "RUNNING", "job / callback / key / admin"]
    assert rows["update"][2] == "(unchanged)"
    assert rows["index"][3] == "job / key / admin"
    assert rows["reset"][1:4] == ["any", "RESET", "admin"]
    assert rows["delete"][1:4] == ["any", "(record removed)", "admin"]
    for event, row in TRANSITIONS.items():
        assert rows[event][4] == row.description


# -- the diagram ----------------------------------------------------------------------------------------


def test_state_diagram_is_mermaid_state_diagram_starting_at_created() -> None:
    diagram = docs.render_state_diagram()
    assert diagram.splitlines()[0] == "stateDiagram-v2"
    assert "    [*] --> CREATED" in diagram.splitlines()


def test_state_diagram_has_an_edge_for_every_source_target_pair() -> None:
    # given every (from, to, event) the table allows
    expected = table_triples(TRANSITIONS)
    # when the diagram is rendered
    drawn = diagram_triples(docs.render_state_diagram())
    # then it draws exactly those, no more, no fewer
    assert drawn == expected


def test_state_diagram_draws_each_pair_once() -> None:
    arrows = [
        EDGE.match(line).groups()[:2] for line in docs.render_state_diagram().splitlines() if EDGE.match(line)
    ]
    assert len(arrows) == len(set(arrows))


def test_state_diagram_draws_events_from_any_state_once() -> None:
    # given reset and delete, allowed from every state
    lines = docs.render_state_diagram().splitlines()
    # then each is one arrow from the "any state" pseudo-state, not twelve
    assert '    state "any state" as ANY' in lines
    assert "    ANY --> RESET: reset" in lines
    assert "    ANY --> [*]: delete" in lines
    assert not any(line.endswith("--> RESET: reset") and "ANY" not in line for line in lines)


# -- token rules ----------------------------------------------------------------------------------------


def test_token_rules_use_the_code_defaults() -> None:
    # when the token rules are rendered
    text = docs.render_token_rules()
    # then they carry the prefixes and the rotation policy's defaults
    assert "`pjt_`" in text
    assert "`pjc_`" in text
    assert "after 50 uses" in text
    assert "at 3600 s of age" in text
    assert "then 600 s more" in text
    assert "every window of 3600 s" in text
    assert "HMAC-SHA256" in text
    assert "`run`, `update`, `resource`, `fail`, `finish`" in text
    assert "every event except `reset`, `ready`, `delete`" in text


def test_token_rules_follow_the_rotation_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    # given other rotation defaults
    policy = RotationPolicy(rotate_uses=7, rotate_seconds=60, grace_seconds=5)
    monkeypatch.setattr(docs, "RotationPolicy", lambda: policy)
    # when the rules are rendered
    text = docs.render_token_rules()
    # then they say so
    assert "after 7 uses" in text
    assert "at 60 s of age" in text
    assert "then 5 s more" in text


# -- a changed table changes the output ------------------------------------------------------------------


def test_changing_transitions_changes_the_generated_docs(modified_table: MappingProxyType) -> None:
    # given a modified TRANSITIONS (fixture)
    # when the docs are rendered again
    table = docs.render_state_table()
    diagram = docs.render_state_diagram()
    rules = docs.render_token_rules()
    # then the new row, the new arrows and the new callback event appear
    assert [row[0] for row in table_rows(table)][-1] == "`pause`"
    assert "| `pause` | RUNNING | CREATED | callback / admin | pause it |" in table
    assert (
        "| `cancel` | CREATED, RUNNING | CANCELED | job / key / admin | stop it, even while it runs |"
        in table
    )
    assert "    RUNNING --> CREATED: pause" in diagram.splitlines()
    assert "    RUNNING --> CANCELED: cancel" in diagram.splitlines()
    assert diagram_triples(diagram) == table_triples(modified_table)
    assert "`finish`, `pause`, on its own job only" in rules


def test_changing_transitions_makes_a_generated_readme_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a README generated from the real table
    readme = tmp_path / "README.md"
    readme.write_text(README_TEMPLATE.format(*MARKERS))
    docs.update_readme(readme)
    assert docs.update_readme(readme, check=True)
    # when the table changes
    rows = dict(TRANSITIONS)
    del rows["finalize"]
    table = MappingProxyType(rows)
    monkeypatch.setattr(jobcore.states, "TRANSITIONS", table)
    monkeypatch.setattr(docs, "TRANSITIONS", table)
    # then the README is out of date
    assert not docs.update_readme(readme, check=True)


# -- README ---------------------------------------------------------------------------------------------


def test_update_readme_replaces_only_the_generated_sections(tmp_path: Path) -> None:
    # given a README with both marker pairs and old text between them
    readme = tmp_path / "README.md"
    readme.write_text(README_TEMPLATE.format(*MARKERS))
    # when it is updated
    was_fresh = docs.update_readme(readme)
    # then it was stale, now holds the generated sections between the markers, and the rest is kept
    text = readme.read_text()
    assert not was_fresh
    assert "old states text" not in text
    assert docs.render_state_table() in text
    assert "```mermaid\n" + docs.render_state_diagram() + "```\n" in text
    assert docs.render_token_rules() in text
    assert text.startswith("# title\n\nintro kept as is\n\n" + MARKERS[0] + "\n")
    assert text.endswith(MARKERS[5] + "\n\nfooter kept as is\n")
    assert text.index(MARKERS[0]) < text.index("| event |") < text.index(MARKERS[1])
    assert text.index(MARKERS[2]) < text.index("| credential |") < text.index(MARKERS[3])
    assert text.index(MARKERS[4]) < text.index("| `TABLE_NAME` |") < text.index(MARKERS[5])


def test_update_readme_is_idempotent(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README_TEMPLATE.format(*MARKERS))
    docs.update_readme(readme)
    first = readme.read_text()
    assert docs.update_readme(readme) is True
    assert readme.read_text() == first


def test_update_readme_check_reports_stale_without_writing(tmp_path: Path) -> None:
    # given a stale README
    readme = tmp_path / "README.md"
    original = README_TEMPLATE.format(*MARKERS)
    readme.write_text(original)
    # when checked
    fresh = docs.update_readme(readme, check=True)
    # then it is reported stale and left untouched
    assert fresh is False
    assert readme.read_text() == original


def test_update_readme_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(docs.ReadmeError, match="does not exist"):
        docs.update_readme(tmp_path / "README.md", check=True)


@pytest.mark.parametrize("dropped", range(4))
def test_update_readme_missing_marker_is_a_clear_error(tmp_path: Path, dropped: int) -> None:
    # given a README lacking one of the four marker lines
    readme = tmp_path / "README.md"
    markers = [m if i != dropped else "" for i, m in enumerate(MARKERS)]
    readme.write_text(README_TEMPLATE.format(*markers))
    # when checked or updated
    # then the error names the missing marker, and nothing is written
    with pytest.raises(docs.ReadmeError, match=re.escape(MARKERS[dropped])):
        docs.update_readme(readme, check=True)
    with pytest.raises(docs.ReadmeError):
        docs.update_readme(readme)
    assert readme.read_text() == README_TEMPLATE.format(*markers)


def test_update_readme_markers_out_of_order_is_a_clear_error(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README_TEMPLATE.format(MARKERS[1], MARKERS[0], *MARKERS[2:]))
    with pytest.raises(docs.ReadmeError, match="comes before"):
        docs.update_readme(readme, check=True)


def test_main_check_exits_1_with_a_message_when_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README_TEMPLATE.format(*MARKERS))
    assert docs.main(["--check", "--readme", str(readme)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert docs.main(["--readme", str(readme)]) == 0
    assert "updated" in capsys.readouterr().out
    assert docs.main(["--check", "--readme", str(readme)]) == 0
    assert "up to date" in capsys.readouterr().out


def test_main_check_reports_missing_readme_and_markers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert docs.main(["--check", "--readme", str(tmp_path / "README.md")]) == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "README.md").write_text("# no markers\n")
    assert docs.main(["--check", "--readme", str(tmp_path / "README.md")]) == 1
    assert "BEGIN GENERATED: states" in capsys.readouterr().err


def run_docs_module(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pipelinejobs.docs", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603 (our interpreter)


def test_python_m_pipelinejobs_docs_updates_readme_in_the_working_directory(tmp_path: Path) -> None:
    # given a stale README.md in the working directory
    (tmp_path / "README.md").write_text(README_TEMPLATE.format(*MARKERS))
    # when checked, then updated, then checked again
    stale = run_docs_module("--check", cwd=tmp_path)
    update = run_docs_module(cwd=tmp_path)
    fresh = run_docs_module("--check", cwd=tmp_path)
    # then the exit codes say stale, updated, fresh
    assert (stale.returncode, update.returncode, fresh.returncode) == (1, 0, 0), stale.stderr + update.stderr
    assert "out of date" in stale.stderr


def test_repo_readme_is_up_to_date() -> None:
    # given the repository's README.md
    # when its generated sections are compared with the code
    fresh = docs.update_readme(ROOT / "README.md", check=True)
    # then they match: run `python -m pipelinejobs.docs` after changing the table or the token rules
    assert fresh, "README.md is out of date: run `python -m pipelinejobs.docs`"


def test_configuration_table_names_every_variable_the_settings_read() -> None:
    # given the variables jobcore.settings reads from the environment
    source = (ROOT / "layers/core/jobcore/settings.py").read_text()
    body = source.split('"""', 2)[2]  # the code after the module docstring
    read = set(re.findall(r'"([A-Z][A-Z_]{3,})"', body))  # env.get("X"), integer("X"), _REQUIRED
    # when the README's configuration table is rendered
    table = docs.render_configuration()
    documented = set(re.findall(r"`([A-Z_]+)`", table))
    # then every one of them has a row, and the table has its header
    assert read, "no variable found: the pattern above no longer matches settings.py"
    assert read <= documented, f"undocumented: {sorted(read - documented)}"
    assert table.startswith("| variable | used by | default | meaning |\n|---|")
