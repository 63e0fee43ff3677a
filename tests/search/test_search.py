"""Search across a user's own chats, on the suite's real database: SQLite FTS5 by default, PostgreSQL
full-text search in the scaled run. Every test here runs on both; where the engines differ in how they
are repaired (FTS5 triggers, PostgreSQL indexes) the test says which it checks."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection

from qtap_site.chat.models import Chat, Message
from qtap_site.search import services
from qtap_site.search.query import MAX_QUERY_CHARS, MAX_TERMS, parse, snippet_html

pytestmark = pytest.mark.django_db

NOTHING = "Nothing to search for"


def hits(user: Any, text: str) -> list[tuple[int, int | None]]:
    return [(r.chat_id, r.message_id) for r in services.search(user=user, query=text)]


def page(client: Any, text: str, **headers: str) -> str:
    response = client.get("/search/", {"q": text}, headers=headers)
    assert response.status_code == 200
    return response.content.decode()


# ---- matching -----------------------------------------------------------------------------------


def test_newest_first_however_often_the_word_appears(user: Any, write_chat: Any) -> None:
    """The issue asks for newest first: the message that says it three times comes where its time puts it."""
    _, (strong,) = write_chat(user, "Ops", [("user", "kubernetes kubernetes kubernetes upgrade")], minutes=0)
    _, (weak,) = write_chat(
        user,
        "Other",
        [("user", "we once talked about kubernetes and then about lunch, the weather and many other things")],
        minutes=30,
    )
    _, (older_twin,) = write_chat(user, "Twin A", [("user", "kubernetes upgrade notes")], minutes=10)
    _, (newer_twin,) = write_chat(user, "Twin B", [("user", "kubernetes upgrade notes")], minutes=20)
    titled, _ = write_chat(user, "Kubernetes at home", [], minutes=25)

    order = [message_id for _, message_id in hits(user, "kubernetes")]

    assert order == [weak.pk, None, newer_twin.pk, older_twin.pk, strong.pk]
    assert hits(user, "kubernetes")[1] == (titled.pk, None)


def test_newest_first_holds_when_ids_and_times_disagree(user: Any, write_chat: Any) -> None:
    """An imported chat gets new ids but keeps its original, older times: time decides, not the id."""
    _, (recent,) = write_chat(user, "Written here", [("user", "the heron came back")], minutes=60)
    _, (imported,) = write_chat(user, "Imported", [("user", "an old heron story")], minutes=0)
    assert imported.pk > recent.pk
    assert [m for _, m in hits(user, "heron")] == [recent.pk, imported.pk]


def test_a_word_in_many_messages_walks_from_the_newest(
    user: Any, bob: Any, write_chat: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``FEW`` matches SQLite walks messages newest first instead of sorting every match (PostgreSQL's
    planner makes the same choice from its statistics); the answer is the same either way, and another
    user's newer messages are passed over."""
    from qtap_site.search import fts5

    monkeypatch.setattr(fts5, "FEW", 3)
    _, mine = write_chat(user, "Mine", [("user", f"common word number {i}") for i in range(8)], minutes=0)
    write_chat(bob, "Bob's", [("user", f"common word of bob {i}") for i in range(5)], minutes=100)
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        found = [r.message_id for r in services.search(user=user, query="common", limit=5)]
    assert found == [m.pk for m in reversed(mine)][:5]
    if connection.vendor == "sqlite":
        assert any("INDEXED BY search_message_newest" in q["sql"] for q in queries.captured_queries)


def test_a_snippet_marks_the_match_and_shows_html_as_text(user: Any, alice_client: Any, write_chat: Any) -> None:
    write_chat(user, "Pasted page", [("assistant", 'Here is the widget: <script>alert("owned")</script> done.')])

    (result,) = services.search(user=user, query="widget")
    assert "<mark>widget</mark>" in result.snippet
    assert "<script>" not in result.snippet
    assert "&lt;script&gt;" in result.snippet

    html = page(alice_client, "widget")
    assert "<mark>widget</mark>" in html
    assert '<script>alert("owned")' not in html
    assert "&lt;script&gt;alert(" in html


def test_a_phrase_matches_its_words_together_and_in_order(user: Any, write_chat: Any) -> None:
    _, (together,) = write_chat(user, "A", [("user", "the red balloon floated away")])
    write_chat(user, "B", [("user", "a balloon that was red")])

    assert hits(user, '"red balloon"') == [(together.chat_id, together.pk)]
    assert len(hits(user, "red balloon")) == 2  # as two words, both messages have both


def test_a_word_found_in_a_reply(user: Any, write_chat: Any) -> None:
    chat, (_, reply) = write_chat(user, "Help", [("user", "how do I do it?"), ("assistant", "Use the zeppelin API.")])

    (result,) = services.search(user=user, query="zeppelin")
    assert (result.chat_id, result.message_id, result.role) == (chat.pk, reply.pk, "assistant")


def test_several_words_must_all_match(user: Any, write_chat: Any) -> None:
    _, (both,) = write_chat(user, "A", [("user", "apricot jam and walnut bread")])
    write_chat(user, "B", [("user", "apricot only")])
    write_chat(user, "C", [("user", "walnut only")])

    assert hits(user, "walnut apricot") == [(both.chat_id, both.pk)]


def test_words_are_stemmed_on_both_engines(user: Any, write_chat: Any) -> None:
    _, (message,) = write_chat(user, "A", [("user", "we deployed the service yesterday")])

    assert hits(user, "deploys") == [(message.chat_id, message.pk)]


def test_a_title_match_links_to_the_chat(user: Any, alice_client: Any, write_chat: Any) -> None:
    chat, (message,) = write_chat(user, "Quarterly budget planning", [("user", "numbers for the quarter")])

    (result,) = services.search(user=user, query="budget")
    assert (result.chat_id, result.message_id, result.role) == (chat.pk, None, "title")
    assert result.snippet == "Quarterly <mark>budget</mark> planning"

    html = page(alice_client, "budget")
    assert f'href="/chats/{chat.pk}/"' in html
    assert "#message-" not in html

    html = page(alice_client, "numbers")
    assert f'href="/chats/{chat.pk}/#message-{message.pk}"' in html


# ---- scoping ------------------------------------------------------------------------------------


def test_bob_never_sees_alices_chats(user: Any, bob: Any, alice_client: Any, bob_client: Any, write_chat: Any) -> None:
    alices, (alice_message,) = write_chat(user, "Secret marmalade plans", [("user", "the marmalade recipe")])
    bobs, (bob_message,) = write_chat(bob, "Bob's marmalade", [("user", "marmalade for bob")])

    assert set(hits(bob, "marmalade")) == {(bobs.pk, None), (bobs.pk, bob_message.pk)}
    assert set(hits(user, "marmalade")) == {(alices.pk, None), (alices.pk, alice_message.pk)}

    html = page(bob_client, "marmalade")
    assert f"/chats/{alices.pk}/" not in html
    assert "Secret" not in html and "recipe" not in html
    assert NOTHING not in page(bob_client, "recipe") and "No chat of yours matches" in page(bob_client, "recipe")


def test_the_page_needs_a_sign_in(client: Any) -> None:
    response = client.get("/search/", {"q": "anything"})
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


# ---- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "!!!", '"', '""', "*", "-", "( ) : ^", '" "'])
def test_input_with_nothing_to_search_for_gets_a_clear_message(user: Any, alice_client: Any, text: str) -> None:
    assert services.search(user=user, query=text) == []
    html = page(alice_client, text)
    if text.strip():
        assert NOTHING in html
    else:
        assert NOTHING not in html  # the bare page, before anything was typed
    assert "<mark>" not in html


@pytest.mark.parametrize(
    ("text", "finds"),
    [
        ("NEAR(", True),  # FTS5 syntax, read as the word "near"
        ("NEAR(engine", True),
        ("-engine", True),  # not a NOT: the word itself
        ("engine*", True),  # not a prefix query
        ('"near engine', True),  # unbalanced quote: a phrase to the end
        ("engine OR nothingatall", False),  # OR is a word that must match too, not an operator
        ("near:engine", True),  # not a column filter: the two words, adjacent
    ],
)
def test_engine_syntax_is_read_as_plain_words(
    user: Any, alice_client: Any, write_chat: Any, text: str, finds: bool
) -> None:
    _, (message,) = write_chat(user, "Syntax", [("user", "the near engine of the ship")])

    assert hits(user, text) == ([(message.chat_id, message.pk)] if finds else [])
    html = page(alice_client, text)
    assert NOTHING not in html
    assert ("<mark>" in html) is finds


def test_a_dangling_operator_is_a_word_and_engines_differ_on_stop_words(user: Any, write_chat: Any) -> None:
    """``engine AND`` is a syntax error in raw FTS5 and an operator in websearch syntax; here it is two words.
    FTS5 then needs the word "and" too; PostgreSQL's english configuration drops it as a stop word."""
    _, (message,) = write_chat(user, "Syntax", [("user", "the near engine of the ship")])

    expected = [(message.chat_id, message.pk)] if connection.vendor == "postgresql" else []
    assert hits(user, '"engine" AND') == expected
    assert hits(user, "engine AND ship OR") == expected


def test_a_very_long_query_is_cut_and_says_so(user: Any, alice_client: Any, write_chat: Any) -> None:
    _, (message,) = write_chat(user, "Long", [("user", "alpha bravo")])
    text = "alpha " + "bravo " * 2000

    parsed = parse(text)
    assert parsed.truncated and len(parsed.terms) == 2
    assert hits(user, text) == [(message.chat_id, message.pk)]
    html = page(alice_client, text)
    assert f"Only the first {MAX_TERMS} words ({MAX_QUERY_CHARS} characters) were searched." in html
    assert "<mark>alpha</mark>" in html

    many = " ".join(f"w{i}" for i in range(MAX_TERMS + 5))
    assert len(parse(many).terms) == MAX_TERMS and parse(many).truncated


def test_parse_reads_phrases_and_words() -> None:
    parsed = parse('  deploy "red  balloon" NEAR( -x "open')
    assert [(t.text, t.is_phrase) for t in parsed.terms] == [
        ("deploy", False),
        ("red balloon", True),
        ("NEAR(", False),
        ("-x", False),
        ("open", False),
    ]
    assert parse('say "a ""b"" c"').fts5() == '"say" "a" "b" "c"'
    assert not parse('"" * - !!')


def test_stray_marker_characters_never_unbalance_the_snippet() -> None:
    assert snippet_html("a \ue000b\ue000 <i>c\ue001\ue001 d \ue000e") == (
        "a <mark>b &lt;i&gt;c</mark> d <mark>e</mark>"
    )


# ---- htmx ---------------------------------------------------------------------------------------


def test_an_htmx_request_gets_only_the_results(user: Any, alice_client: Any, write_chat: Any) -> None:
    chat, (message,) = write_chat(user, "Trip", [("user", "pack the umbrella")])

    partial = page(alice_client, "umbrella", **{"HX-Request": "true"})
    assert partial.lstrip().startswith('<div id="search-results"')
    assert "<html" not in partial and "<form" not in partial
    assert f'href="/chats/{chat.pk}/#message-{message.pk}"' in partial
    assert "<mark>umbrella</mark>" in partial

    full = page(alice_client, "umbrella")
    assert "<html" in full and 'id="search-q"' in full and 'value="umbrella"' in full
    assert "qtap/search.js" in full

    assert NOTHING in page(alice_client, "***", **{"HX-Request": "true"})


def test_the_chat_list_has_a_search_box(alice_client: Any) -> None:
    html = alice_client.get("/").content.decode()
    assert re.search(r'<form method="get" action="/search/" role="search"[^>]*>.*name="q"', html)


# ---- keeping the index in step ------------------------------------------------------------------


def test_the_index_follows_edits_and_deletes(user: Any, write_chat: Any) -> None:
    chat, (message, other) = write_chat(user, "Garden", [("user", "plant the tulips"), ("user", "water the roses")])

    message.content = "plant the daffodils"
    message.save()
    assert hits(user, "tulips") == []
    assert hits(user, "daffodils") == [(chat.pk, message.pk)]

    Message.objects.filter(pk=other.pk).update(content="water the orchids")
    assert hits(user, "roses") == []
    assert hits(user, "orchids") == [(chat.pk, other.pk)]

    chat.title = "Allotment"
    chat.save()
    assert hits(user, "garden") == []
    assert hits(user, "allotment") == [(chat.pk, None)]

    Message.objects.filter(pk=other.pk).delete()
    assert hits(user, "orchids") == []

    chat.delete()
    assert hits(user, "daffodils") == []
    assert hits(user, "allotment") == []


def test_rebuild_search_index_catches_up_with_rows_written_behind_its_back(user: Any, write_chat: Any) -> None:
    """What breaks the index differs by engine: on SQLite a migration that remakes chat_message drops its
    triggers with the old table; on PostgreSQL an index can be dropped. Either way the rows written
    meanwhile are found again after ``rebuild_search_index``, which also puts the missing piece back."""
    chat, _ = write_chat(user, "Before", [("user", "written before")])
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            for trigger in ("search_message_ai", "search_message_au", "search_message_ad", "search_chat_ai"):
                cursor.execute(f"DROP TRIGGER {trigger}")
    else:
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX search_message_vector")
    Message.objects.bulk_create(
        [Message(chat=chat, role="assistant", content=f"behind the back number {i} pelican") for i in range(3)]
    )
    late = Chat.objects.create(user=user, title="Pelican sightings")
    if connection.vendor == "sqlite":
        assert hits(user, "pelican") == []  # the index never heard of them
    (warning,) = [m for m in run_checks(databases=["default"]) if m.id == "search.W001"]
    assert "rebuild_search_index" in warning.hint

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the test's open transaction holds FK checks
    out = StringIO()
    call_command("rebuild_search_index", stdout=out)
    summary = out.getvalue().strip()
    assert "\n" not in summary
    assert re.fullmatch(r"Search index rebuilt \(.+\): 4 messages and 2 chat titles in \d+\.\d\d s\.", summary)

    assert not [m for m in run_checks(databases=["default"]) if m.id == "search.W001"]
    found = hits(user, "pelican")
    assert len(found) == 4 and (late.pk, None) in found
    if connection.vendor == "sqlite":
        Message.objects.create(chat=chat, role="user", content="a pelican again")  # the trigger is back
        assert len(hits(user, "pelican")) == 5
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'search_message_vector'")
            assert cursor.fetchone() == (1,)


def test_postgres_answers_from_the_gin_index(user: Any, write_chat: Any) -> None:
    """The predicate a search uses (``search_vector @@ tsquery``, as the captured query shows) can be answered
    from the GIN index. (Whether the planner prefers it over the user's chats depends on the statistics.)"""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: the scaled run checks its plan")
    from django.test.utils import CaptureQueriesContext

    write_chat(user, "Plan", [("user", "an indexed walrus")])
    with CaptureQueriesContext(connection) as queries:
        assert hits(user, "walrus")
    predicate = """("chat_message"."search_vector") @@ (phraseto_tsquery('english'::regconfig, 'walrus'))"""
    assert predicate in queries.captured_queries[0]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN SELECT id FROM chat_message WHERE {predicate}")  # noqa: S608 -- a constant
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "search_message_vector" in plan


def test_without_the_newest_index_search_still_answers_and_the_check_says_so(
    user: Any, write_chat: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qtap_site.search import fts5

    monkeypatch.setattr(fts5, "FEW", 0)
    _, made = write_chat(user, "Birds", [("user", "a crane"), ("user", "two cranes")])
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX search_message_newest")
    assert [m for _, m in hits(user, "crane")] == [made[1].pk, made[0].pk]
    (warning,) = [m for m in run_checks(databases=["default"]) if m.id == "search.W001"]
    assert "search_message_newest" in warning.msg
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the test's open transaction holds FK checks
    call_command("rebuild_search_index", stdout=StringIO())
    assert not [m for m in run_checks(databases=["default"]) if m.id == "search.W001"]
