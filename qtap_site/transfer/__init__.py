"""Export and import of chats: Markdown and JSON per chat, a streamed qtap archive of all of a user's chats, and
imports of qtap archives, ChatGPT and Claude exports (SPEC §5b).
"""
