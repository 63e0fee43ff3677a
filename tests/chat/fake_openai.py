"""The shared OpenAI-dialect test server, scripted the way the chat tests think: a list of tokens.

Each chat request is answered from ``tokens`` (and ``reasoning``) at the time it arrives, so a test
can change the script between turns.
"""

from __future__ import annotations

from tests.fakes.openai_dialect import FakeOpenAI
from tests.fakes.server import Receive, RecordedRequest, Send

VALID_KEY = "sk-test-chat-0123456789"


class ChatFake(FakeOpenAI):
    def __init__(
        self, tokens: list[str] | None = None, *, reasoning: list[str] | None = None, flavour: str = "openai"
    ) -> None:
        super().__init__(flavour)
        self.api_key = VALID_KEY
        self.tokens = tokens if tokens is not None else ["Hello", ", ", "world", "!"]
        self.reasoning = reasoning or []
        self.usage: tuple[int, int] | None = None  # default: 11 prompt tokens, one completion token per chunk
        # The usage chunk's ``cost``, as OpenRouter reports it (flavour "openrouter"; None: its default 0.0001).
        self.cost: float | None = None
        self.drop_after: int | None = None  # chunks sent before the connection is cut (the role chunk counts)
        self.no_finish = False  # end cleanly without finish_reason, usage or [DONE]

    @property
    def full_text(self) -> str:
        return "".join(self.tokens)

    async def _chat(self, request: RecordedRequest, send: Send, receive: Receive) -> None:
        finished = not self.no_finish
        self.reply(
            self.tokens,
            reasoning=self.reasoning,
            usage=(self.usage or (11, len(self.tokens))) if finished else None,
            cost=self.cost,
            finish="stop" if finished else None,
            done=finished,
        )
        if self.drop_after is not None:
            self.mid_stream(after=self.drop_after, kind="drop")
        await super()._chat(request, send, receive)
