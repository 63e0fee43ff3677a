"""The measuring half of bench/search.py, run in a fresh interpreter against a throwaway database.

It migrates the database it is given (SQLite in a temporary data directory, or a temporary PostgreSQL
database), writes the corpus with ``bulk_create`` (so the FTS5 triggers, or PostgreSQL's generated
column and GIN index, do their work on insert, as they would in use), gathers statistics, then times
``qtap_site.search.services.search`` for each kind of query. A module of helpers, not a benchmark
(``python -m bench`` skips names with ``_``).

The corpus is synthetic but shaped like chat text: made-up words drawn with a Zipf distribution (a few
very common, most rare), 20 to 120 words a message, alternating user and assistant, so a common word matches
tens of thousands of messages and a rare one a handful.
"""

from __future__ import annotations

import json
import random
import sys
import time
from typing import Any

from bench._common import percentile

SYLLABLES = ["ka", "lo", "mi", "ren", "tu", "sa", "vor", "eli", "qua", "dex", "nor", "bi", "fen", "gal", "ost"]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def corpus(messages: int, chats: int, seed: int = 7) -> tuple[list[str], list[list[str]], list[str]]:
    """The vocabulary (by rank, most common first), each chat's message texts, and the chat titles."""
    rng = random.Random(seed)
    words = vocabulary(5000, rng)
    weights = [1 / (rank + 1) for rank in range(len(words))]
    per_chat = messages // chats
    texts = [
        [" ".join(rng.choices(words, weights, k=rng.randint(20, 120))) for _ in range(per_chat)] for _ in range(chats)
    ]
    titles = [" ".join(rng.choices(words, weights, k=3)).capitalize() for _ in range(chats)]
    return words, texts, titles


def write(user: Any, texts: list[list[str]], titles: list[str]) -> None:
    from qtap_site.chat.models import Chat, Message

    made = Chat.objects.bulk_create([Chat(user=user, title=title) for title in titles])
    batch: list[Any] = []
    for chat, chat_texts in zip(made, texts, strict=True):
        for i, text in enumerate(chat_texts):
            batch.append(Message(chat=chat, role="user" if i % 2 == 0 else "assistant", content=text))
        if len(batch) >= 5000:
            Message.objects.bulk_create(batch)
            batch = []
    Message.objects.bulk_create(batch)


def measure(messages: int, chats: int, runs: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from qtap_site.search.services import rebuild_index, search

    call_command("migrate", verbosity=0)
    users = get_user_model().objects
    searcher = users.create_user(username="searcher", password="bench-password-long")
    neighbour = users.create_user(username="neighbour", password="bench-password-long")

    words, texts, titles = corpus(messages, chats)
    started = time.perf_counter()
    write(searcher, texts, titles)
    # Another user's chats, a tenth as many, that every query must skip.
    write(neighbour, *corpus(messages // 10, max(1, chats // 10), seed=11)[1:])
    insert_s = time.perf_counter() - started
    # Fresh statistics, as autovacuum (PostgreSQL) or ``PRAGMA optimize`` would gather soon after a bulk
    # load: without them PostgreSQL takes the 110,000 rows for a handful and plans accordingly.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    sample = texts[len(texts) // 2][0].split()
    queries = {
        "common word": words[3],
        "mid word": words[300],
        "rare word": words[4000],
        "two words": f"{words[40]} {words[900]}",
        "phrase": f'"{sample[5]} {sample[6]}"',
        "title word": titles[0].split()[0].lower(),
        "no match": "zzyzx",
    }
    figures: dict[str, Any] = {}
    everything: list[float] = []
    for kind, text in queries.items():
        for _ in range(3):  # warm the caches, as a second search of the same words would find them
            found = search(user=searcher, query=text)
        timings = []
        for _ in range(runs):
            began = time.perf_counter()
            found = search(user=searcher, query=text)
            timings.append((time.perf_counter() - began) * 1000)
        everything += timings
        figures[kind] = {
            "query": text,
            "results": len(found),
            "p50_ms": percentile(timings, 50),
            "p99_ms": percentile(timings, 99),
        }
    rebuilt = rebuild_index()
    return {
        "engine": rebuilt.engine,
        "database": connection.vendor,
        "messages": messages + messages // 10,
        "searched_user_messages": messages,
        "chats": chats + max(1, chats // 10),
        "insert_with_index_s": round(insert_s, 1),
        "rebuild_search_index_s": round(rebuilt.seconds, 2),
        "runs_per_query": runs,
        "queries": figures,
        "overall": {"p50_ms": percentile(everything, 50), "p99_ms": percentile(everything, 99)},
    }


if __name__ == "__main__":
    messages, chats, runs = (int(value) for value in sys.argv[1:4])
    print("QTAP_BENCH " + json.dumps(measure(messages, chats, runs)), flush=True)
