"""The events queue's deduplication ids (jobcore.adapters.sqs): what SQS takes, never two ids in one."""

from __future__ import annotations

from jobcore.adapters.sqs import dedup_id_for


def test_a_deduplication_id_sqs_takes_is_itself_and_a_longer_one_a_hash_that_keeps_ids_apart() -> None:
    # given an event id of the longest length a producer may give, and its follow-ups' ids
    event_id = "e" * 128
    ids = [event_id, f"{event_id}:index:0", f"{event_id}:index:1", f"{event_id}:erase:0"]
    # then the event keeps its own id, and each follow-up gets one of its own, within SQS's 128
    made = [dedup_id_for(text) for text in ids]
    assert made[0] == event_id
    assert len(set(made)) == len(made) and all(len(m) <= 128 for m in made)
    # and the same text always gives the same id (a resend is deduplicated)
    assert dedup_id_for(ids[1]) == made[1]
