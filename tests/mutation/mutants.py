"""`make mutants`: break the guards on purpose, one at a time, and check that a fast test notices.

Each mutant is a hand-written patch of one guard of the domain core, the worker's batch handling, the
API's acceptance or the token rules: a clause of a write condition removed, a check skipped, a
transition changed, a leak added. Mutation tools that generate mutants by the thousand (mutmut,
cosmic-ray) spend their time on lines whose change no contract notices; these are the changes a real
bug would make to what the SPEC promises, each one the shape of a bug seen or feared (issue 15).

For each mutant: the patch is applied in the working tree, the targeted tests run (unit tests and the
integration tests of guards, in seconds, stopping at the first failure), and the file is put back,
whatever happens. A mutant is *killed* when a test fails, *survived* when all pass. It prints one line
per mutant and the figure, and exits 1 if any survived.

    .venv/bin/python tests/mutation/mutants.py [--only ID ...] [--list]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = "layers/core/jobcore"

# The tests every mutant is run against: unit tests and the integration tests of the guards.
TARGETED = (
    "tests/unit",
    "tests/integration/test_guards.py",
    "tests/integration/test_api_promise.py",
    "tests/integration/test_worker_rules.py",
    "tests/integration/test_worker_reliability.py",
    "tests/integration/test_worker_hostile_messages.py",
    "tests/integration/test_api_tokens.py",
    "tests/integration/test_api_keys.py",
    "tests/integration/test_api_routes.py",
    "tests/integration/test_archive.py",
    "tests/integration/test_indexer.py",
    "tests/integration/test_leak_probe.py",
    "tests/model/test_model_based.py::test_scenarios_once_found_diverging_match_the_model",
)


@dataclass(frozen=True)
class Mutant:
    id: str
    what: str
    path: str
    old: str
    new: str


MUTANTS = (
    # -- the worker's write: each clause of the guard ---------------------------------------------------
    Mutant("apply-generation", "the generation clause of the apply condition removed", f"{CORE}/adapters/dynamodb.py",
           "            & (J.generation == c.expected_generation)  # ... of this run, which the history entry records\n",
           "\n"),
    Mutant("apply-deleted", "the `deleted_at does not exist` clause removed", f"{CORE}/adapters/dynamodb.py",
           "            & J.deleted_at.does_not_exist()  # ... and is not deleted\n            & (J.state",
           "            & (J.state"),
    Mutant("apply-state", "the expected-state clause removed", f"{CORE}/adapters/dynamodb.py",
           "            & (J.state == str(c.expected_state))  # the transition is allowed from exactly this state,\n",
           "\n"),
    Mutant("apply-credential", "a producer's token no longer checked in the write", f"{CORE}/adapters/dynamodb.py",
           "        if not c.authorized and c.by is not Actor.ADMIN:\n            condition &= self._credential_clause(c.by, c.token_hash, c.now, c.key_id)",
           "        pass"),
    Mutant("apply-duplicate", "the history put no longer conditional (a redelivery applies twice)",
           f"{CORE}/adapters/dynamodb.py",
           "                tx.save(history, condition=self.HistoryItem.sk.does_not_exist())",
           "                tx.save(history)"),
    Mutant("apply-order", "the API's order not enforced (applied_seq clause removed)", f"{CORE}/adapters/dynamodb.py",
           "            condition &= J.applied_seq == c.after_seq  # the API's order: right after the one before it",
           "            pass"),
    Mutant("apply-pending", "a producer's state change may overtake accepted events", f"{CORE}/adapters/dynamodb.py",
           "            condition &= J.accepted_seq <= J.applied_seq",
           "            pass"),
    Mutant("apply-follow-up", "the erasure's completion no longer tied to its reset", f"{CORE}/adapters/dynamodb.py",
           "            condition &= J.last_event_id == c.expected_last_event_id  # internal follow-up of that event",
           "            pass"),
    Mutant("record-order", "a refused accepted event recorded without taking its place", f"{CORE}/adapters/dynamodb.py",
           "        condition = J.pk.exists() & (J.applied_seq == record.after_seq)  # its place is the next one",
           "        condition = J.pk.exists()"),
    # -- the worker's batch handling ----------------------------------------------------------------------
    Mutant("batch-group", "a failure fails only its own message, not the rest of its group",
           "functions/worker/worker_handler.py",
           "    processor = SqsFifoPartialProcessor(skip_group_on_error=True)",
           "    processor = SqsFifoPartialProcessor(skip_group_on_error=False)"),
    Mutant("batch-order", "a batch's accepted events no longer put back in order", "functions/worker/worker_handler.py",
           "    if isinstance(records, list) and len(records) > 1:", "    if False:"),
    Mutant("redelivered-reset", "a reset redelivered after a crash no longer re-queues its erasure",
           f"{CORE}/service.py",
           '        if name in ("reset", "delete"):\n            job = self.repo.get(uuid)',
           '        if False:\n            job = self.repo.get(uuid)'),
    Mutant("redelivered-keep", "a redelivered reset completes ahead of events accepted after it",
           f"{CORE}/service.py",
           "and seq is not None and job.applied_seq > seq:", "and seq is not None and False:"),
    Mutant("mark-unchecked", "a message's acceptance mark taken without checking it", f"{CORE}/service.py",
           "        if not self.keyring().marked(fields, m.mark):", "        if False:"),
    Mutant("mark-rechecked", "accepted events' credentials checked again by the worker", f"{CORE}/service.py",
           "        if m.mark is None or m.seq is None", "        if True or m.mark is None or m.seq is None"),
    Mutant("late-revoked", "an accepted event arriving after a reset applied to the new generation",
           f"{CORE}/service.py",
           "        if job.deleted or job.generation != a.generation:", "        if job.deleted:"),
    Mutant("erase-signature", "erasure steps no longer signed", f"{CORE}/service.py",
           "        if not self.keyring().erase_signed(", "        if False and not self.keyring().erase_signed("),
    Mutant("purge-ignored", "delete with purge_archive keeps the archive", f"{CORE}/service.py",
           '        elif name == "delete" and data["purge_archive"]:', '        elif False:'),
    # -- the indexer --------------------------------------------------------------------------------------
    Mutant("index-run", "the system's indexed no longer tied to the run it ends", f"{CORE}/adapters/dynamodb.py",
           "            condition &= J.index_run == c.completes_index[0]", "            pass"),
    Mutant("index-overtakes", "the system's indexed overtakes events the API accepted", f"{CORE}/service.py",
           "        overtakes = m.since is not None and now - m.since >= self.settings.order_wait_seconds",
           "        overtakes = True"),
    Mutant("index-signature", "indexer steps no longer signed", f"{CORE}/service.py",
           "        if not self.keyring().index_signed(", "        if False and not self.keyring().index_signed("),
    Mutant("index-stale-manifest", "a reset or delete keeps the manifest", f"{CORE}/adapters/dynamodb.py",
           "        if c.effect is not Effect.NONE:\n            return [J.index_run.remove()",
           "        if False:\n            return [J.index_run.remove()"),
    Mutant("index-redelivered", "an index redelivered after a crash no longer queues its first step",
           f"{CORE}/service.py",
           '        if name == "index":\n            # the first delivery may have died',
           '        if False:\n            # the first delivery may have died'),
    Mutant("dedup-cut", "a long deduplication id cut short (an event's follow-ups dropped as its copies)",
           f"{CORE}/adapters/sqs.py",
           "                MessageDeduplicationId=dedup_id_for(dedup_id),",
           "                MessageDeduplicationId=dedup_id[:128],"),
    Mutant("index-resume", "a step resumes from the archive's start, not after the last key recorded",
           f"{CORE}/service.py",
           "        after, count = m.start_after, m.count", "        after, count = None, m.count"),
    # -- the API's acceptance ------------------------------------------------------------------------------
    Mutant("accept-projection", "the API checks the stored state, not the state the queued events lead to",
           f"{CORE}/adapters/dynamodb.py",
           "            condition &= J.accepted_state.is_in(", "            condition &= J.state.is_in("),
    Mutant("accept-credential", "the API's write no longer checks the job or callback token",
           f"{CORE}/adapters/dynamodb.py",
           "        condition &= self._credential_clause(a.by, a.token_hash, a.now, a.key.key_id if a.key else None)\n        if a.expected_seq",
           "        if a.expected_seq"),
    Mutant("accept-keyed", "an Idempotency-Key's first use not recorded once", f"{CORE}/adapters/dynamodb.py",
           "                        condition=K.sk.does_not_exist(),\n",
           "\n"),
    Mutant("accept-key", "the API's write no longer checks the producer key (revoked, expired, wrong)",
           f"{CORE}/adapters/dynamodb.py",
           "                        self.KeyItem, key_pk(key.key_id), KEY_SK, condition=self._key_valid(key.key_hash, now)",
           "                        self.KeyItem, key_pk(key.key_id), KEY_SK, condition=self.KeyItem.pk.exists()"),
    Mutant("accept-owner", "a producer key's write no longer checks the job's owner", f"{CORE}/adapters/dynamodb.py",
           "            return J.owner == (key_id or \"\")  # a key acts on the jobs it created only",
           "            return J.pk.exists()"),
    Mutant("apply-key-revoked", "the worker applies a revoked key's queued events", f"{CORE}/adapters/dynamodb.py",
           "condition=K.pk.exists() & K.revoked_at.does_not_exist()", "condition=K.pk.exists()"),
    Mutant("revoked-projection", "the projection stays where events refused after a revoked key's left it",
           f"{CORE}/service.py",
           "                projection = (str(job.state), job.generation)\n", "                projection = None\n"),
    Mutant("stale-rotates", "a rotated-out token's use rotates again (the bug of issue 9)", f"{CORE}/access.py",
           "        due = self.policy.due(job.tokens, now, state_changing=state_changing)",
           "        due = self.policy.due(job.tokens, now, state_changing=state_changing) or current != token"),
    Mutant("event-ids", "any event id reads as queued", f"{CORE}/keyring.py",
           "        return hmac.compare_digest(self._event_id(uuid, nonce), event_id)", "        return True"),
    Mutant("nan-accepted", "NaN and Infinity accepted", f"{CORE}/payloads.py",
           "    return json.loads(text, parse_constant=_refuse_constant)", "    return json.loads(text)"),
    # -- the state table and the token rules --------------------------------------------------------------
    Mutant("table-source", "cancel allowed from RUNNING too", f"{CORE}/states.py",
           "            frozenset({State.CREATED}), State.CANCELED, _JOB_OR_ADMIN,",
           "            frozenset({State.CREATED, State.RUNNING}), State.CANCELED, _JOB_OR_ADMIN,"),
    Mutant("table-target", "finish leads to VALIDATED", f"{CORE}/states.py",
           '            frozenset({State.RUNNING, State.FINISHED}),\n            State.FINISHED,',
           '            frozenset({State.RUNNING, State.FINISHED}),\n            State.VALIDATED,'),
    Mutant("table-actor", "a callback token may index", f"{CORE}/states.py",
           '            State.INDEXING,\n            _JOB_OR_ADMIN,', '            State.INDEXING,\n            _ANYONE,'),
    Mutant("grace-boundary", "a rotated-out token still valid at the very end of its grace", f"{CORE}/tokens.py",
           "        in_grace = any(same_hash(key, h) and until > now for h, until in self.grace.items())",
           "        in_grace = any(same_hash(key, h) and until >= now for h, until in self.grace.items())"),
    Mutant("grace-none", "a rotated-out token gets no grace period", f"{CORE}/tokens.py",
           "            grace[grace_key(self.token_hash)] = now + policy.grace_seconds",
           "            grace[grace_key(self.token_hash)] = now"),
    Mutant("grace-cap", "rotation ignores the cap on tokens in grace", f"{CORE}/tokens.py",
           "        return self.token_hash is None or len(self.live_grace(now)) < MAX_GRACE_TOKENS",
           "        return True"),
    # -- leaks ----------------------------------------------------------------------------------------------
    Mutant("leak-log", "the worker logs the token it refused", f"{CORE}/service.py",
           '        if job.deleted:\n            return "the job is deleted"',
           '        logger.warning("job %s refused token %s", job.uuid, token)\n'
           '        if job.deleted:\n            return "the job is deleted"'),
    Mutant("leak-pipeline", "a pipeline id holding a credential quoted in a key's 403", f"{CORE}/access.py",
           '_SHOWN_PIPELINE: Final = re.compile(r"[A-Za-z0-9._:-]{1,32}")',
           '_SHOWN_PIPELINE: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")'),
    Mutant("leak-error", "an unknown credential quoted in its 401", f"{CORE}/access.py",
           '            raise Unauthorized("the credential is not a pipelinejobs token")',
           '            raise Unauthorized(f"the credential {token} is not a pipelinejobs token")'),
)  # fmt: skip


def run(mutant: Mutant) -> tuple[str, float, str]:
    path = ROOT / mutant.path
    original = path.read_text()
    if original.count(mutant.old) != 1:
        return "stale", 0.0, f"the patch matches {original.count(mutant.old)} places in {mutant.path}"
    started = time.monotonic()
    try:
        path.write_text(original.replace(mutant.old, mutant.new))
        result = subprocess.run(  # noqa: S603 - the project's own interpreter and tests
            [sys.executable, "-m", "pytest", *TARGETED, "-x", "-q", "-p", "no:cacheprovider", "-n", "2"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1200,
        )
    finally:
        path.write_text(original)
    seconds = time.monotonic() - started
    failed = [line.split(" ")[1] for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    if result.returncode == 0:
        return "survived", seconds, ""
    if failed:
        return "killed", seconds, failed[0].split("::", 1)[-1][:70]
    return "error", seconds, (result.stdout + result.stderr).strip().splitlines()[-1][:70]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="mutant ids to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or m.id in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.id:<18} {m.what}")
        return 0
    paths = sorted({m.path for m in chosen})
    status = subprocess.run(  # noqa: S603
        ["git", "status", "--porcelain", "--", *paths],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    dirty = status.stdout.strip()
    if dirty:
        print(f"uncommitted changes in the files the mutants patch; commit or stash them first:\n{dirty}")
        return 2
    print(
        f"{len(chosen)} mutants, each against {len(TARGETED)} test folders and files (stopping at the first failure)"
    )
    outcomes: dict[str, int] = {}
    total = time.monotonic()
    for i, mutant in enumerate(chosen, 1):
        outcome, seconds, detail = run(mutant)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        print(
            f"[{i:>2}/{len(chosen)}] {outcome:<8} {seconds:5.0f} s  {mutant.id:<18} {detail or mutant.what}",
            flush=True,
        )
    killed, count = outcomes.get("killed", 0), len(chosen)
    print(
        f"\nmutants: {killed} killed, {outcomes.get('survived', 0)} survived"
        + "".join(f", {n} {k}" for k, n in outcomes.items() if k not in ("killed", "survived"))
        + f" of {count} ({killed / count:.0%} killed) in {time.monotonic() - total:.0f} s"
    )
    return 0 if killed == count else 1


if __name__ == "__main__":
    raise SystemExit(main())
