from tests.support.fixtures import alice_cookie, chat_on_fake, scripted_openai

__all__ = ["alice_cookie", "chat_on_fake", "scripted_openai"]
