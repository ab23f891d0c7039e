"""The launch benchmark's Firestore counts come from decoding each RPC's request: pin
the decoding on messages built with Google's own types (what the channel carries)."""

from google.cloud.firestore_v1.types import firestore as fs
from google.cloud.firestore_v1.types import write

from bench.served import Tally, _CountedQuery, _note_request

DB = "projects/p/databases/(default)/documents"
FIRESTORE = "/google.firestore.v1.Firestore/"


def test_a_batched_read_that_begins_a_transaction_counts_every_document_asked_for():
    tally = Tally()
    request = fs.BatchGetDocumentsRequest(
        database="projects/p/databases/(default)",
        documents=[f"{DB}/orders/a", f"{DB}/licenses/b", f"{DB}/customers/c"],
        new_transaction={"read_write": {}},
    )
    _note_request(tally, FIRESTORE + "BatchGetDocuments", request)
    assert tally.counts["firestore.reads"] == 3
    assert tally.counts["firestore.billed_reads"] == 3
    assert tally.counts["firestore.transactions"] == 1


def test_a_commit_counts_writes_and_deletes_and_remembers_each_document():
    tally = Tally()
    request = fs.CommitRequest(
        database="projects/p/databases/(default)",
        writes=[
            write.Write(update={"name": f"{DB}/orders/a"}),
            write.Write(update={"name": f"{DB}/rate_limits/x"}),
            write.Write(delete=f"{DB}/email_jobs/j"),
        ],
    )
    _note_request(tally, FIRESTORE + "Commit", request)
    assert tally.counts["firestore.commits"] == 1
    assert tally.counts["firestore.writes"] == 2
    assert tally.counts["firestore.deletes"] == 1
    assert set(tally.writes_at) == {"orders/a", "rate_limits/x", "email_jobs/j"}


def test_a_query_is_billed_one_read_per_document_and_one_when_it_finds_nothing():
    found = Tally()
    responses = [fs.RunQueryResponse(document={"name": f"{DB}/orders/{i}"}) for i in range(2)]
    assert len(list(_CountedQuery(iter([*responses, fs.RunQueryResponse()]), found))) == 3
    assert found.counts["firestore.reads"] == 2
    assert found.counts["firestore.billed_reads"] == 2
    empty = Tally()
    list(_CountedQuery(iter([fs.RunQueryResponse()]), empty))
    assert empty.counts["firestore.reads"] == 0
    assert empty.counts["firestore.billed_reads"] == 1


def test_cloud_tasks_calls_are_counted_by_method():
    tally = Tally()
    _note_request(tally, "/google.cloud.tasks.v2.CloudTasks/CreateTask", object())
    assert tally.counts["tasks.CreateTask"] == 1
