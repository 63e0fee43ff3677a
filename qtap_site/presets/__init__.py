"""Presets: a user's library of system prompts (name, text, optional profile), chosen when a chat starts (SPEC
§5b).
"""
